// Charts for trend.html: each series night after night, drawn with the
// chart code report.html uses (window.hal9Charts). Change points are
// dashed lines labelled with the step; the commit range before each (the
// suspects) is shaded; the median level of each segment is the dashed
// line. Sets <body data-rendered="N charts"> when done.
(function () {
  "use strict";
  var C = window.hal9Charts, body = document.body;
  var data = JSON.parse(document.getElementById("data").textContent);
  var root = document.getElementById("trend"), DAY = 864e5;
  var t0 = Infinity, t1 = -Infinity;
  data.series.forEach(function (s) { s.pts.forEach(function (p) { t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]); }); });
  var xMax = Math.max(1, (t1 - t0) / DAY);
  function X(t) { return (t - t0) / DAY; }
  function day(t) { return new Date(t).toISOString().slice(0, 10); }
  var colors = { regression: "#c62f3a", improvement: "#3566b8" };

  function chart(s) {
    var ys = s.pts.map(function (p) { return p[1]; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys), pad = Math.max((hi - lo) * 0.6, Math.abs(hi) * 0.02);
    var pts = s.pts.map(function (p) { return [X(p[0]), p[1], day(p[0]) + " · " + p[2] + " · " + (+p[1].toPrecision(5))]; });
    var cps = s.cps || [], marks = [], bands = [], level = [];
    cps.forEach(function (c) {
      var i = c.index, x = X(s.pts[i][0]), prev = i > 0 ? X(s.pts[i - 1][0]) : x;
      var col = colors[c.direction];
      marks.push({ x: x, label: (c.change >= 0 ? "+" : "") + (100 * c.change).toFixed(1) + "% p " + c.p.toPrecision(2), color: col });
      bands.push({ x0: prev, x1: x, color: col, cls: "commit-range", name: "commits " + c.previous_commit.slice(0, 10) + ".." + c.commit.slice(0, 10) + " (" + c.direction + ")" });
    });
    // Segment levels: each segment's median, from the change points.
    var starts = [0].concat(cps.map(function (c) { return c.index; })), ends = cps.map(function (c) { return c.index; }).concat([s.pts.length]);
    starts.forEach(function (a, k) {
      var v = k < cps.length ? cps[k].before : (cps.length ? cps[cps.length - 1].after : null);
      if (v === null || ends[k] <= a) return;
      level.push([X(s.pts[a][0]), v], [X(s.pts[ends[k] - 1][0]), v]);
    });
    var what = s.kind === "ratio" ? "ratio to " + s.group : s.group;
    var series = [{ name: s.metric, color: "#4e79a7", pts: pts, dots: true }];
    if (level.length) series.push({ name: "level", color: "#8c8c8c", dash: true, pts: level });
    var box = C.lineChart(s.metric + " · " + what + (s.judged ? "" : " (shown, not checked)"), s.kind === "ratio" ? "" : (s.unit === "ms" ? "ms" : ""),
      series, xMax, hi + pad, marks, { bands: bands, xUnit: "d", yMin: Math.max(lo > 0 ? 0 : -Infinity, lo - pad) });
    box.id = s.id;
    if (!s.judged) box.className += " shown";
    return box;
  }

  var drawn = 0, section = null, group = null, grid = null, keys = {};
  data.series.forEach(function (s) {
    var sec = s.profile || "(no profile)", grp = s.leg + " · " + s.scenario, op = s.op || "all operations";
    if (keys.sec !== sec) {
      section = document.createElement("section");
      section.appendChild(Object.assign(document.createElement("h2"), { textContent: "profile " + sec }));
      root.appendChild(section);
      keys = { sec: sec };
    }
    if (keys.grp !== grp) {
      section.appendChild(Object.assign(document.createElement("h3"), { textContent: grp }));
      keys.grp = grp; keys.op = undefined;
    }
    if (keys.op !== op) {
      section.appendChild(Object.assign(document.createElement("h4"), { textContent: "op: " + op }));
      grid = document.createElement("div");
      grid.className = "grid";
      section.appendChild(grid);
      keys.op = op;
    }
    grid.appendChild(chart(s));
    drawn++;
  });
  if (!data.series.length) root.textContent = "The history holds no series yet: add runs with `hal9-lab history add RUN_DIR`.";
  body.setAttribute("data-rendered", drawn + " charts");
})();
