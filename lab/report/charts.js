// Charts for report.html: inline SVG drawn from the embedded JSON, no
// network, no library. Sets <body data-rendered="N charts"> when done;
// errors go into #errors and data-errors (the headless browser test reads
// both).
(function () {
  "use strict";
  var C = window.hal9Charts, el = C.el, lineChart = C.lineChart, body = document.body;
  var data = JSON.parse(document.getElementById("data").textContent);
  data.legs = data.legs || []; // a capacity-only run has no scenario series

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
  (data.gate || []).forEach(function (g) { byKey[g.leg + "|" + g.scenario + "|" + (g.op || "") + "|" + g.metric] = g; });
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
