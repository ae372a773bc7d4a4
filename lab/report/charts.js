// Charts for report.html: inline SVG drawn from the embedded JSON, no
// network, no library. Sets <body data-rendered="N charts"> when done;
// errors go into #errors and data-errors (the headless browser test reads
// both).
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
  var data = JSON.parse(document.getElementById("data").textContent);
  data.legs = data.legs || []; // a capacity-only run has no scenario series

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // niceTicks returns about n round tick values covering [0, max].
  function niceTicks(max, n) {
    if (!(max > 0)) max = 1;
    var raw = max / n, pow = Math.pow(10, Math.floor(Math.log10(raw))), steps = [1, 2, 2.5, 5, 10], step = pow;
    for (var i = 0; i < steps.length; i++) { if (steps[i] * pow >= raw) { step = steps[i] * pow; break; } }
    var ticks = [];
    for (var v = 0; v <= max + step * 1e-9; v += step) ticks.push(+v.toFixed(10));
    if (ticks[ticks.length - 1] < max) ticks.push(+(ticks[ticks.length - 1] + step).toFixed(10));
    return ticks;
  }

  function fmt(v, unit) {
    if (unit === "%") return (+v.toFixed(1)) + "%";
    if (unit === "$") return "$" + (v < 0.01 && v > 0 ? v.toExponential(1) : +v.toFixed(4));
    if (Math.abs(v) >= 1000) return (+(v / 1000).toFixed(1)) + "k";
    return String(+v.toFixed(2));
  }

  // lineChart draws series [{name, color, dash, pts:[[x,y]...]}] with shared
  // scales xMax, yMax; marks [{x, label}] are vertical dashed lines. opt:
  // bands [{x0, x1, label, ok}] are shaded fault windows, hlines
  // [{y, label, color}] horizontal lines, xUnit labels the x ticks ("s").
  function lineChart(title, unit, series, xMax, yMax, marks, opt) {
    opt = opt || {};
    var bands = opt.bands, hlines = opt.hlines, xUnit = opt.xUnit === undefined ? "s" : opt.xUnit;
    var box = document.createElement("div");
    box.className = "chart";
    box.appendChild(Object.assign(document.createElement("h4"), { textContent: title }));
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title });
    var iw = W - M.l - M.r, ih = H - M.t - M.b;
    var yt = niceTicks(yMax, 4), ymax = yt[yt.length - 1];
    var xt = niceTicks(xMax, 6), xmax = xt[xt.length - 1];
    function X(x) { return M.l + (x / xmax) * iw; }
    function Y(y) { return M.t + ih - (y / ymax) * ih; }
    yt.forEach(function (t) {
      svg.appendChild(el("line", { x1: M.l, x2: W - M.r, y1: Y(t), y2: Y(t), stroke: "#e9edf3" }));
      svg.appendChild(el("text", { x: M.l - 6, y: Y(t) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7686" }, fmt(t, unit)));
    });
    xt.forEach(function (t) {
      svg.appendChild(el("text", { x: X(t), y: H - M.b + 15, "text-anchor": "middle", "font-size": 10, fill: "#6b7686" }, fmt(t, "") + xUnit));
    });
    svg.appendChild(el("line", { x1: M.l, x2: W - M.r, y1: Y(0), y2: Y(0), stroke: "#b9c2cf" }));
    (bands || []).forEach(function (b, i) {
      var x0 = X(Math.max(0, b.x0)), x1 = X(Math.min(xmax, Math.max(b.x1, b.x0)));
      var band = el("rect", { x: x0, y: M.t, width: Math.max(2, x1 - x0), height: ih, fill: b.ok ? "#f2b33d" : "#e15759", "fill-opacity": 0.16, "class": "fault-band" });
      band.appendChild(el("title", {}, b.name));
      svg.appendChild(band);
      // Labels on the first chart only, staggered over three rows.
      if (b.label) svg.appendChild(el("text", { x: x0 + 1, y: M.t + 8 + (i % 3) * 9, "font-size": 7.5, fill: "#8a6d1f" }, b.label));
    });
    (marks || []).forEach(function (m) {
      svg.appendChild(el("line", { x1: X(m.x), x2: X(m.x), y1: M.t, y2: M.t + ih, stroke: "#9aa5b5", "stroke-dasharray": "3 3" }));
      svg.appendChild(el("text", { x: X(m.x) + 3, y: M.t + 9, "font-size": 9, fill: "#6b7686" }, m.label));
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
        var d = pts.map(function (p, i) { return (i ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(Math.min(p[1], ymax)).toFixed(1); }).join("");
        var path = el("path", { d: d, fill: "none", stroke: s.color, "stroke-width": 1.8, "stroke-linejoin": "round" });
        if (s.dash) path.setAttribute("stroke-dasharray", "5 4");
        path.appendChild(el("title", {}, s.name));
        svg.appendChild(path);
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

  // legRows flattens a leg's scenarios into x (seconds since the leg's
  // first sample) → values, with cumulative cost carried across scenarios.
  function legRows(leg) {
    var t0 = Infinity;
    leg.scenarios.forEach(function (sc) {
      (sc.series || []).forEach(function (p) { t0 = Math.min(t0, p.t); });
      (sc.server || []).forEach(function (p) { t0 = Math.min(t0, p.t); });
    });
    var r = { p50: [], p95: [], p99: [], reqs: [], iters: [], planned: [], errors: [], dropped: [], vus: [], hit: [], cost: [], marks: [], bands: [], xmax: 1 };
    if (!isFinite(t0)) return r;
    (leg.faults || []).forEach(function (f) {
      r.bands.push({ x0: (f.start - t0) / 1000, x1: (f.healed - t0) / 1000, name: f.name, label: "", ok: f.ok });
    });
    var costBase = 0;
    leg.scenarios.forEach(function (sc) {
      var series = sc.series || [], server = sc.server || [];
      var first = series.length ? series[0].t : (server.length ? server[0].t : t0);
      if (leg.scenarios.length > 1) r.marks.push({ x: (first - t0) / 1000, label: sc.name });
      series.forEach(function (p) {
        var x = (p.t - t0) / 1000;
        r.xmax = Math.max(r.xmax, x);
        if (p.reqs > 0) { r.p50.push([x, p.p50]); r.p95.push([x, p.p95]); r.p99.push([x, p.p99]); }
        r.reqs.push([x, p.reqs]); r.iters.push([x, p.iters || 0]);
        if (p.planned) r.planned.push([x, p.planned]);
        r.errors.push([x, p.errors]); r.dropped.push([x, p.dropped || 0]); r.vus.push([x, p.vus]);
      });
      var last = 0;
      server.forEach(function (p) {
        var x = (p.t - t0) / 1000;
        r.xmax = Math.max(r.xmax, x);
        if (p.cache_hit_rate >= 0) r.hit.push([x, p.cache_hit_rate * 100]);
        r.cost.push([x, costBase + p.cost_usd]);
        last = p.cost_usd;
      });
      costBase += last;
    });
    return r;
  }

  function maxOf() {
    var m = 0;
    for (var i = 0; i < arguments.length; i++) arguments[i].forEach(function (p) { if (isFinite(p[1])) m = Math.max(m, p[1]); });
    return m;
  }

  var grid = document.getElementById("chart-grid");
  var rows = data.legs.map(legRows);
  var xMax = Math.max.apply(null, [1].concat(rows.map(function (r) { return r.xmax; })));
  var lim = { lat: 0, rate: 0, err: 0, vus: 0, cost: 0 };
  rows.forEach(function (r) {
    lim.lat = Math.max(lim.lat, maxOf(r.p99, r.p95, r.p50));
    lim.rate = Math.max(lim.rate, maxOf(r.reqs, r.iters, r.planned));
    lim.err = Math.max(lim.err, maxOf(r.errors, r.dropped), 1);
    lim.vus = Math.max(lim.vus, maxOf(r.vus), 1);
    lim.cost = Math.max(lim.cost, maxOf(r.cost));
  });
  var drawn = 0;
  data.legs.forEach(function (leg, i) {
    var r = rows[i];
    var col = document.createElement("div");
    col.className = "legcol";
    col.appendChild(Object.assign(document.createElement("h3"), { textContent: leg.name }));
    var charts = [
      lineChart("Latency percentiles (http_req_duration, ms)", "ms", [
        { name: "p50", color: "#4e79a7", pts: r.p50 }, { name: "p95", color: "#f28e2b", pts: r.p95 }, { name: "p99", color: "#e15759", pts: r.p99 }], xMax, lim.lat, r.marks,
        { bands: r.bands.map(function (b) { return Object.assign({}, b, { label: b.name }); }) }),
      lineChart("Rate: achieved vs planned (per second)", "", [
        { name: "requests/s", color: "#59a14f", pts: r.reqs }, { name: "iterations/s", color: "#4e79a7", pts: r.iters },
        { name: "planned it/s", color: "#8c8c8c", dash: true, pts: r.planned }], xMax, lim.rate, r.marks, { bands: r.bands }),
      lineChart("Errors and dropped iterations (per second)", "", [
        { name: "failed requests", color: "#e15759", pts: r.errors }, { name: "dropped", color: "#b07aa1", pts: r.dropped }], xMax, lim.err, r.marks, { bands: r.bands }),
      lineChart("Virtual users", "", [{ name: "VUs", color: "#76b7b2", pts: r.vus }], xMax, lim.vus, r.marks, { bands: r.bands }),
      lineChart("LLM cache hit rate (server, per scrape)", "%", [{ name: "hit rate", color: "#d4a72c", pts: r.hit }], xMax, 100, r.marks, { bands: r.bands,
        hlines: [{ y: 90, label: "seed 002 target 90 %", color: "#1f8a4c" }, { y: 30, label: "seed 000 alert < 30 %", color: "#c62f3a" }] }),
      lineChart("LLM cost (server, cumulative USD)", "$", [{ name: "cost", color: "#e17c9a", pts: r.cost }], xMax, lim.cost || 0.01, r.marks, { bands: r.bands })
    ];
    charts.forEach(function (c) { col.appendChild(c); drawn++; });
    grid.appendChild(col);
  });
  if (!data.legs.length) grid.textContent = "No leg produced a time series.";

  // Strips: each gate row's per-run values, baseline grey, now coloured.
  var byKey = {};
  (data.gate || []).forEach(function (g) { byKey[g.leg + "|" + g.scenario + "|" + g.metric] = g; });
  var colors = { regressed: "#c62f3a", improved: "#3566b8", inconclusive: "#b7791f", pass: "#1f8a4c" };
  Array.prototype.forEach.call(document.querySelectorAll("[data-strip]"), function (td) {
    var g = byKey[td.getAttribute("data-strip")];
    if (!g) return;
    var all = (g.baseline || []).concat(g.candidate || []);
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    var svg = el("svg", { viewBox: "0 0 180 22" });
    svg.appendChild(el("line", { x1: 4, x2: 176, y1: 11, y2: 11, stroke: "#e3e7ee" }));
    function put(vals, y, c) {
      (vals || []).forEach(function (v) {
        var dot = el("circle", { cx: 4 + 172 * (v - lo) / (hi - lo), cy: y, r: 3.2, fill: c, "fill-opacity": 0.75 });
        dot.appendChild(el("title", {}, String(+v.toPrecision(4))));
        svg.appendChild(dot);
      });
    }
    put(g.baseline, 7, "#9aa5b5");
    put(g.candidate, 15, colors[g.verdict] || "#333");
    td.appendChild(svg);
    drawn++;
  });
  drawn += drawCapacity();
  body.setAttribute("data-rendered", drawn + " charts");

  // drawCapacity draws each leg's capacity curves into #capacity-grid:
  // latency percentiles against the achieved request rate (SLO and knee
  // marked), and the cache hit rate and LLM cost per 1,000 requests
  // against it beside the seeds' lines. It returns the number of charts.
  function drawCapacity() {
    var grid = document.getElementById("capacity-grid"), n = 0;
    if (!grid || !data.capacity) return 0;
    var xMax = 1, yMax = 0;
    data.capacity.forEach(function (c) {
      c.steps.forEach(function (s) { xMax = Math.max(xMax, s.x); });
      c.steps.forEach(function (s) { if (s.pass || s.x <= c.knee_rps * 1.5) yMax = Math.max(yMax, s.p99); });
      yMax = Math.max(yMax, (c.slo_ms || 0) * 1.3);
    });
    data.capacity.forEach(function (c) {
      var col = document.createElement("div");
      col.className = "legcol";
      col.appendChild(Object.assign(document.createElement("h3"), { textContent: c.leg }));
      function pts(key) { return c.steps.map(function (s) { return [s.x, s[key]]; }); }
      function opt(key) { return c.steps.filter(function (s) { return s[key] !== undefined && s[key] !== null; }).map(function (s) { return [s.x, s[key]]; }); }
      var marks = c.knee_rps ? [{ x: c.knee_rps, label: "knee" }] : [];
      var slo = c.slo_ms ? [{ y: c.slo_ms, label: c.slo_label }] : [];
      col.appendChild(lineChart("Latency against throughput (ms vs achieved req/s)", "ms", [
        { name: "p50", color: "#4e79a7", pts: pts("p50") }, { name: "p95", color: "#f28e2b", pts: pts("p95") },
        { name: "p99", color: "#e15759", pts: pts("p99") }], xMax, yMax, marks, { xUnit: " req/s", hlines: slo }));
      var cost = opt("cost_per_1k"), costMax = c.seed_cost_per_1k * 1.2;
      cost.forEach(function (p) { costMax = Math.max(costMax, p[1]); });
      col.appendChild(lineChart("LLM cache hit rate against throughput", "%", [{ name: "hit rate", color: "#d4a72c", pts: opt("hit") }], xMax, 100, marks, { xUnit: " req/s",
        hlines: [{ y: c.hit_target, label: "seed 002 target 90 %", color: "#1f8a4c" }, { y: c.hit_alert, label: "seed 000 alert < 30 %", color: "#c62f3a" }] }));
      col.appendChild(lineChart("LLM cost per 1,000 requests against throughput", "$", [{ name: "cost / 1k req", color: "#e17c9a", pts: cost }], xMax, costMax, marks, { xUnit: " req/s",
        hlines: [{ y: c.seed_cost_per_1k, label: "seed 000's bill per 1k", color: "#1f8a4c" }] }));
      grid.appendChild(col);
      n += 3;
    });
    return n;
  }
})();
