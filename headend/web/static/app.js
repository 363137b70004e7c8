/* Taiqu console: draw uPlot charts from JSON embedded in the page (no inline script, no CDN). */
(function () {
  "use strict";

  function dayToEpoch(day) { return Date.parse(day + "T00:00:00Z") / 1000; }

  function draw(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(el.dataset.series);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var width = Math.max(el.clientWidth, 280);
    var xs, series, axes;
    if (el.dataset.kind === "days") {
      xs = data.days.map(dayToEpoch);
      series = [{}, { label: el.dataset.label + " %", stroke: "#0b5cad", width: 2, points: { show: true } },
                { label: el.dataset.label2 + " %", stroke: "#a4141a", dash: [6, 4], width: 1, points: { show: false } }];
      el.chart = new uPlot({ width: width, height: 260, series: series, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        scales: { x: { time: true } }, axes: [{ space: 70, values: function (u, v) { return v.map(function (x) { return new Date(x * 1e3).toISOString().slice(5, 10); }); } }, { values: function (u, v) { return v.map(function (x) { return x + " %"; }); } }] },
        [xs, data.rate, data.target], el);
    } else {
      var zone = document.body.dataset.zone || "Asia/Shanghai";
      series = [{}, { label: el.dataset.label, stroke: "#0b5cad", width: 2, points: { show: data.t.length < 60 } }];
      el.chart = new uPlot({ width: width, height: 260, series: series, scales: { x: { time: true } },
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); } }, [data.t, data.v], el);
    }
    el.dataset.drawn = "true";
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart[data-series]").forEach(draw);
  }

  function resize() {
    document.querySelectorAll(".chart[data-drawn]").forEach(function (el) {
      if (el.chart) el.chart.setSize({ width: Math.max(el.clientWidth, 280), height: 260 });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) {
    drawAll(e.target);
    var confirm = e.target.querySelector && e.target.querySelector("#confirm");
    if (confirm) confirm.focus();  // move keyboard and screen-reader focus to the confirmation
  });
  var timer;
  window.addEventListener("resize", function () { clearTimeout(timer); timer = setTimeout(resize, 150); });
})();
