// History page: line charts of the patient's own readings (JSON from the page, made by
// Django's json_script), with the target drawn as a shaded band.
(function () {
  "use strict";
  var COLOURS = ["#d1242f", "#1f6feb", "#1a7f37"];
  var BANDS = ["rgba(26, 127, 55, 0.10)", "rgba(31, 111, 235, 0.08)"];

  function dayLabel(ms, zone, withTime) {
    var options = { month: "2-digit", day: "2-digit", timeZone: zone };
    if (withTime) { options.hour = "2-digit"; options.minute = "2-digit"; options.hour12 = false; }
    try { return new Date(ms).toLocaleString(document.documentElement.lang || undefined, options); }
    catch (e) { return new Date(ms).toISOString().slice(5, 16).replace("T", " "); }
  }

  // Shaded target bands behind the lines: {from, to, series} in the y axis' units.
  var bandPlugin = {
    id: "targetBands",
    beforeDatasetsDraw: function (chart, args, options) {
      var bands = options.bands || [];
      var area = chart.chartArea;
      var y = chart.scales.y;
      var ctx = chart.ctx;
      ctx.save();
      bands.forEach(function (band, i) {
        var top = y.getPixelForValue(band.to);
        var bottom = y.getPixelForValue(band.from);
        top = Math.max(area.top, Math.min(area.bottom, top));
        bottom = Math.max(area.top, Math.min(area.bottom, bottom));
        if (bottom <= top) return;
        ctx.fillStyle = BANDS[i % BANDS.length];
        ctx.fillRect(area.left, top, area.right - area.left, bottom - top);
      });
      ctx.restore();
    }
  };

  function draw(canvas, spec, data) {
    var twoSeries = spec.kind === "bp";
    var datasets = [{
      label: spec.series[0],
      data: spec.points.map(function (p) { return { x: p[0], y: p[1] }; }),
      borderColor: COLOURS[0], backgroundColor: COLOURS[0], tension: 0.2, pointRadius: 3
    }];
    if (twoSeries) {
      datasets.push({
        label: spec.series[1],
        data: spec.points.map(function (p) { return { x: p[0], y: p[2] }; }),
        borderColor: COLOURS[1], backgroundColor: COLOURS[1], tension: 0.2, pointRadius: 3
      });
    }
    var values = [];
    spec.points.forEach(function (p) { values.push(p[1]); if (twoSeries && p[2] !== null) values.push(p[2]); });
    spec.bands.forEach(function (b) { values.push(b.from, b.to); });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    var pad = Math.max(1, (high - low) * 0.1);
    var big = document.documentElement.classList.contains("elder");
    new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      plugins: [bandPlugin],
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          x: {
            type: "linear", min: data.from, max: data.to,
            ticks: { maxTicksLimit: 5, font: { size: big ? 14 : 11 },
                     callback: function (value) { return dayLabel(value, data.zone, false); } }
          },
          y: { suggestedMin: Math.floor(low - pad), suggestedMax: Math.ceil(high + pad),
               ticks: { font: { size: big ? 14 : 11 } } }
        },
        plugins: {
          legend: { display: twoSeries, labels: { boxWidth: 12 } },
          targetBands: { bands: spec.bands },
          tooltip: { callbacks: { title: function (items) { return dayLabel(items[0].parsed.x, data.zone, true); } } }
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("history-data");
    if (!source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    data.charts.forEach(function (spec) {
      var canvas = document.querySelector('canvas[data-chart="' + spec.kind + '"]');
      if (canvas && spec.points.length) draw(canvas, spec, data);
    });
  });
})();
