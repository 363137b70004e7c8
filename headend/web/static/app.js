/* Taiqu console: draw uPlot charts from JSON embedded in the page (no inline script, no CDN).
 *
 * Axis labels follow the page's language (<html lang>) and the user's time zone (body data-zone)
 * through Intl; the y axis is as wide as its widest label (uPlot's fixed 50 px clipped "12.5 %");
 * the daily line-loss axis ticks whole days only (never the same date at 6-hour steps).  After
 * every draw the tick labels and axis sizes are mirrored into a hidden element next to the chart
 * (.chart-axes, data only) so the drawn text can be read from the DOM.
 */
(function () {
  "use strict";

  var DAY = 86400;
  var DAY_STEPS = [DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 364 * DAY];

  function dayToEpoch(day) { return Date.parse(day + "T00:00:00Z") / 1000; }
  function lang() { return document.documentElement.lang || "en"; }
  function dates(options) { return new Intl.DateTimeFormat(lang(), options); }

  /* The width a left axis needs: its widest label, the tick and the gap (uPlot's size hook). */
  function fitWidth(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1 && axis._size) return axis._size;
    var widest = 0;
    u.ctx.font = axis.font[0];
    (values || []).forEach(function (v) {
      String(v).split("\n").forEach(function (line) {
        widest = Math.max(widest, u.ctx.measureText(line).width);
      });
    });
    return Math.ceil(widest / uPlot.pxRatio + axis.ticks.size + axis.gap + 4);
  }

  /* Day labels ("12月4日", "Dec 4") for a day axis drawn in UTC days. */
  function dayValues() {
    var day = dates({ month: "short", day: "numeric", timeZone: "UTC" });
    return function (u, splits) { return splits.map(function (x) { return day.format(new Date(x * 1e3)); }); };
  }

  /* Time labels in ``zone``: "08:00" with the date under the first tick of each day; whole days
   * by date only. */
  function timeValues(zone) {
    var day = dates({ month: "short", day: "numeric", timeZone: zone });
    var hm = dates({ hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone });
    return function (u, splits, axisIdx, space, incr) {
      var last = "";
      return splits.map(function (x) {
        var d = new Date(x * 1e3), date = day.format(d);
        if (incr >= DAY) return date;
        var label = hm.format(d);
        if (date !== last) { label += "\n" + date; last = date; }
        return label;
      });
    };
  }

  function percent() {
    var number = new Intl.NumberFormat(lang(), { maximumFractionDigits: 2 });
    return function (u, splits) { return splits.map(function (x) { return number.format(x) + " %"; }); };
  }

  /* Mirror the drawn tick labels into the DOM (hidden; read by the browser tests). */
  function mirror(el) {
    return function (u) {
      var box = el.nextElementSibling;
      if (!box || !box.classList.contains("chart-axes")) {
        box = document.createElement("div");
        box.className = "chart-axes";
        box.hidden = true;
        el.insertAdjacentElement("afterend", box);
      }
      box.textContent = "";
      u.axes.forEach(function (axis, i) {
        var list = document.createElement("ol");
        list.dataset.axis = i === 0 ? "x" : "y";
        list.dataset.size = String(axis._size);
        list.dataset.font = axis.font[0];
        list.dataset.pxRatio = String(uPlot.pxRatio);
        list.dataset.ticks = String(axis.ticks.size + axis.gap);
        (axis._values || []).forEach(function (v) {
          var item = document.createElement("li");
          item.textContent = String(v);
          list.appendChild(item);
        });
        box.appendChild(list);
      });
    };
  }

  function draw(el) {
    if (el.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(el.dataset.series);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var width = Math.max(el.clientWidth, 280);
    var hooks = { draw: [mirror(el)] };
    var series, opts;
    if (el.dataset.kind === "days") {
      var longDay = dates({ dateStyle: "medium", timeZone: "UTC" });
      series = [{ label: el.dataset.labelX, value: function (u, v) { return v == null ? "—" : longDay.format(new Date(v * 1e3)); } },
                { label: el.dataset.label + " %", stroke: "#0b5cad", width: 2, points: { show: true } },
                { label: el.dataset.label2 + " %", stroke: "#a4141a", dash: [6, 4], width: 1, points: { show: false } }];
      opts = { width: width, height: 260, series: series, hooks: hooks,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
        scales: { x: { time: true } },
        axes: [{ space: 70, incrs: DAY_STEPS, values: dayValues() },
               { size: fitWidth, values: percent() }] };
      el.chart = new uPlot(opts, [data.days.map(dayToEpoch), data.rate, data.target], el);
    } else {
      var zone = document.body.dataset.zone || "Asia/Shanghai";
      var stamp = dates({ dateStyle: "medium", timeStyle: "short", timeZone: zone });
      series = [{ label: el.dataset.labelX, value: function (u, v) { return v == null ? "—" : stamp.format(new Date(v * 1e3)); } },
                { label: el.dataset.label, stroke: "#0b5cad", width: 2, points: { show: data.t.length < 60 } }];
      opts = { width: width, height: 260, series: series, hooks: hooks, scales: { x: { time: true } },
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); },
        axes: [{ space: 60, values: timeValues(zone) }, { size: fitWidth }] };
      el.chart = new uPlot(opts, [data.t, data.v], el);
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
