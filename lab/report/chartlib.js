// The chart code report.html and trend.html share (ChartLib): inline SVG,
// no network, no library. It installs the error handler both pages rely
// on (errors go into #errors and <body data-errors>, which the headless
// browser tests read) and exports window.hal9Charts = {el, niceTicks, fmt,
// lineChart}.
(function () {
  "use strict";
  var body = document.body;
  window.onerror = function (msg, src, line) {
    var box = document.getElementById("errors");
    box.hidden = false;
    box.textContent += "script error: " + msg + " (line " + line + ")\n";
    body.setAttribute("data-errors", String((+body.getAttribute("data-errors") || 0) + 1));
  };

  var NS = "http://www.w3.org/2000/svg";
  var W = 480, H = 210, M = { l: 52, r: 12, t: 26, b: 28 };

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // niceTicks returns about n round tick values covering [min, max]
  // (min 0 unless given: most charts start at zero).
  function niceTicks(max, n, min) {
    min = min || 0;
    if (!(max > min)) max = min + (Math.abs(min) || 1);
    var raw = (max - min) / n, pow = Math.pow(10, Math.floor(Math.log10(raw))), steps = [1, 2, 2.5, 5, 10], step = pow;
    for (var i = 0; i < steps.length; i++) { if (steps[i] * pow >= raw) { step = steps[i] * pow; break; } }
    var ticks = [], lo = Math.floor(min / step + 1e-9) * step;
    for (var v = lo; v <= max + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
    if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toFixed(10));
    return ticks;
  }

  function fmt(v, unit) {
    if (unit === "%") return (+v.toFixed(1)) + "%";
    if (unit === "$") return "$" + (v < 0.01 && v > 0 ? v.toExponential(1) : +v.toFixed(4));
    if (Math.abs(v) >= 1000) return (+(v / 1000).toFixed(1)) + "k";
    return String(+v.toFixed(2));
  }

  // lineChart draws series [{name, color, dash, dots, pts:[[x,y,tip]...]}] with
  // shared scales xMax, yMax; marks [{x, label, color}] are vertical dashed
  // lines. opt: bands [{x0, x1, name, label, ok, color}] are shaded windows
  // (faults; commit ranges), hlines [{y, label, color}] horizontal lines,
  // xUnit labels the x ticks ("s"), yMin starts the y axis elsewhere than 0.
  function lineChart(title, unit, series, xMax, yMax, marks, opt) {
    opt = opt || {};
    var bands = opt.bands, hlines = opt.hlines, xUnit = opt.xUnit === undefined ? "s" : opt.xUnit;
    var box = document.createElement("div");
    box.className = "chart";
    box.appendChild(Object.assign(document.createElement("h4"), { textContent: title }));
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    var iw = W - M.l - M.r, ih = H - M.t - M.b;
    var yt = niceTicks(yMax, 4, opt.yMin), ymin = yt[0], ymax = yt[yt.length - 1];
    var xt = niceTicks(xMax, 6), xmax = xt[xt.length - 1];
    function X(x) { return M.l + (x / xmax) * iw; }
    function Y(y) { return M.t + ih - ((y - ymin) / (ymax - ymin)) * ih; }
    yt.forEach(function (t) {
      svg.appendChild(el("line", { x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t), stroke: "#e9edf3" }));
      svg.appendChild(el("text", { x: M.l - 6, y: Y(t) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7686" }, fmt(t, unit)));
    });
    xt.forEach(function (t) {
      svg.appendChild(el("text", { x: X(t), y: H - M.b + 15, "text-anchor": "middle", "font-size": 10, fill: "#6b7686" }, fmt(t, "") + xUnit));
    });
    svg.appendChild(el("line", { x1: M.l, x2: W - M.r, y1: Y(ymin), y2: Y(ymin), stroke: "#b9c2cf" }));
    (bands || []).forEach(function (b, i) {
      var x0 = X(Math.max(0, b.x0)), x1 = X(Math.min(xmax, Math.max(b.x1, b.x0)));
      var band = el("rect", { x: x0, y: M.t, width: Math.max(2, x1 - x0), height: ih, fill: b.color || (b.ok ? "#f2b33d" : "#e15759"), "fill-opacity": 0.16, "class": b.cls || "fault-band" });
      band.appendChild(el("title", {}, b.name));
      svg.appendChild(band);
      // Labels on the first chart only, staggered over three rows.
      if (b.label) svg.appendChild(el("text", { x: x0 + 1, y: M.t + 8 + (i % 3) * 9, "font-size": 7.5, fill: "#8a6d1f" }, b.label));
    });
    (marks || []).forEach(function (m) {
      svg.appendChild(el("line", { x1: X(m.x), x2: X(m.x), y1: M.t, y2: M.t + ih, stroke: m.color || "#9aa5b5", "stroke-dasharray": "3 3" }));
      var right = X(m.x) > W * 0.7; // a label near the right edge goes on the left of its line
      svg.appendChild(el("text", { x: X(m.x) + (right ? -3 : 3), y: M.t + 9, "text-anchor": right ? "end" : "start", "font-size": 9, fill: m.color || "#6b7686" }, m.label));
    });
    (hlines || []).forEach(function (h) {
      if (!(h.y <= ymax)) return;
      svg.appendChild(el("line", { x1: M.l, x2: W - M.r, y1: Y(h.y), y2: Y(h.y), stroke: h.color || "#c62f3a", "stroke-dasharray": "6 4" }));
      svg.appendChild(el("text", { x: W - M.r - 2, y: Y(h.y) - 3, "text-anchor": "end", "font-size": 9, fill: h.color || "#c62f3a" }, h.label));
    });
    var empty = true, lx = M.l;
    series.forEach(function (s) {
      var pts = s.pts.filter(function (p) { return isFinite(p[0]) && isFinite(p[1]); });
      if (pts.length) {
        empty = false;
        var d = pts.map(function (p, i) { return (i ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(Math.max(ymin, Math.min(p[1], ymax))).toFixed(1); }).join("");
        var path = el("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 1.8, "stroke-linejoin": "round" });
        if (s.dash) path.setAttribute("stroke-dasharray", "5 4");
        path.appendChild(el("title", {}, s.name));
        svg.appendChild(path);
        // dots: one circle per point, its tooltip p[2] (the trend page's nights).
        if (s.dots) pts.forEach(function (p) {
          var c = el("circle", { cx: X(p[0]).toFixed(1), cy: Y(Math.max(ymin, Math.min(p[1], ymax))).toFixed(1), r: 2.4, fill: s.color });
          c.appendChild(el("title", {}, p[2] || ""));
          svg.appendChild(c);
        });
      }
      svg.appendChild(el("rect", { x: lx, y: 8, width: 10, height: 10, rx: 2, fill: s.color }));
      var label = el("text", { x: lx + 14, y: 17, "font-size": 11, fill: "#3a4352" }, s.name);
      svg.appendChild(label);
      lx += 24 + 6.5 * s.name.length;
    });
    if (empty) svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "font-size": 12, fill: "#9aa5b5" }, "no data"));
    box.appendChild(svg);
    return box;
  }

  window.hal9Charts = { el: el, niceTicks: niceTicks, fmt: fmt, lineChart: lineChart };
})();
