// The event page's charts: uPlot drawing the page's JSON data island (#event-data). The page
// shows the same numbers as tables without this script; no build step, served as written.
(function () {
  "use strict";
  var island = document.getElementById("event-data");
  if (!island || typeof uPlot === "undefined") return;
  var d = JSON.parse(island.textContent);
  var L = d.labels;
  // Keep in step with the .swatch-N colours in app.css.
  var PALETTE = ["#0b5cad", "#c2410c", "#1a7f37", "#7e22ce", "#b42318", "#0e7490", "#a16207", "#475569"];

  // uPlot writes times on the browser's clock: hand it dates whose clock reads the event's.
  function tzDate(ts) {
    var u = new Date((ts + d.offset) * 1000);
    return new Date(u.getUTCFullYear(), u.getUTCMonth(), u.getUTCDate(),
      u.getUTCHours(), u.getUTCMinutes(), u.getUTCSeconds());
  }

  // Times as the page writes them: 24-hour HH:MM on the event's clock.
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function hm(ts) {
    if (ts == null) return "--";
    var t = new Date((ts + d.offset) * 1000);
    return pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes());
  }

  var charts = [];
  function size(el) {
    var w = Math.max(240, el.clientWidth - 8);
    return { width: w, height: w < 600 ? 200 : 280 };
  }
  function draw(el, opts, data) {
    var s = size(el);
    opts.width = s.width;
    opts.height = s.height;
    opts.tzDate = tzDate;
    opts.scales = { x: { time: true } };
    opts.axes = [{
      label: L.time,
      values: function (u, splits) { return splits.map(hm); }
    }, {}];
    opts.series[0] = { label: L.time, value: function (u, ts) { return hm(ts); } };
    var u = new uPlot(opts, data, el);
    charts.push({ u: u, el: el });
    return u;
  }
  function flat(n, v) {
    var out = [];
    for (var i = 0; i < n; i++) out.push(v);
    return out;
  }

  var el = document.getElementById("chart-attendance");
  var a = d.attendance;
  if (el && a.t.length) {
    var n = a.t.length;
    var series = [{}, { label: L.inside, stroke: PALETTE[0], width: 2 }];
    var data = [a.t, a.inside];
    if (a.capacity != null) {
      series.push({ label: L.capacity, stroke: "#b42318", width: 1.5, dash: [6, 4] });
      data.push(flat(n, a.capacity));
    }
    var bands;
    if (a.forecast) {
      series.push({ label: L.forecast, stroke: "#1a7f37", width: 1.5, dash: [2, 4] });
      data.push(flat(n, a.forecast.expected));
      series.push({ label: L.forecastHigh, stroke: "rgba(26,127,55,0.45)", width: 1 });
      data.push(flat(n, a.forecast.high));
      series.push({ label: L.forecastLow, stroke: "rgba(26,127,55,0.45)", width: 1 });
      data.push(flat(n, a.forecast.low));
      bands = [{ series: [series.length - 2, series.length - 1], fill: "rgba(26,127,55,0.10)" }];
    }
    draw(el, { series: series, bands: bands }, data);
  }

  var gel = document.getElementById("chart-gates");
  var g = d.gates;
  if (gel && g.t.length) {
    var gs = [{}];
    var gd = [g.t];
    g.gates.forEach(function (gate, i) {
      var colour = PALETTE[i % PALETTE.length];
      gs.push({ label: gate.id + " · " + L.entries, stroke: colour, width: 2, spanGaps: true });
      gd.push(gate.entries);
      gs.push({ label: gate.id + " · " + L.exits, stroke: colour, width: 1.5, dash: [5, 4], spanGaps: true });
      gd.push(gate.exits);
    });
    var gu = draw(gel, { series: gs, legend: { show: false } }, gd);
    var pick = document.getElementById("gate-pick");
    if (pick) {
      pick.hidden = false;
      pick.addEventListener("change", function (ev) {
        var box = ev.target;
        if (!box.dataset || box.dataset.gate == null) return;
        var i = Number(box.dataset.gate);
        gu.setSeries(1 + 2 * i, { show: box.checked });
        gu.setSeries(2 + 2 * i, { show: box.checked });
      });
    }
  }

  var pending = false;
  window.addEventListener("resize", function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      charts.forEach(function (c) { c.u.setSize(size(c.el)); });
    });
  });
})();
