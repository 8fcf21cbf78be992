// The analytics pages: a Chart.js chart per canvas[data-analytics-chart], drawn when the page
// loads and whenever htmx brings in a metric's card. A chart's data is its canvas's data-series
// attribute (the CSP allows no inline script, and htmx drops <script> elements it swaps in).
// Canvases carry no id, so htmx never carries Chart.js's sizing style across a swap.
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;

  function withChart(done) {
    window.CareLoop.withChart(chartSrc, done);
  }

  // The goal line (the metric's target), dashed, with its label.
  var goal = {
    id: "analyticsGoal",
    afterDatasetsDraw: function (chart, args, options) {
      if (options.value === null || options.value === undefined) {
        return;
      }
      var y = chart.scales.y;
      var area = chart.chartArea;
      var at = y.getPixelForValue(options.value);
      if (at < area.top || at > area.bottom) {
        return;
      }
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#000000";
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, at);
      ctx.lineTo(area.right, at);
      ctx.stroke();
      ctx.setLineDash([]);
      var label = options.label || "";
      ctx.font = "11px " + window.Chart.defaults.font.family;
      ctx.textAlign = "right";
      ctx.textBaseline = "bottom";
      var width = ctx.measureText(label).width;
      ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
      ctx.fillRect(area.right - width - 8, at - 16, width + 6, 14);
      ctx.fillStyle = "#000000";
      ctx.fillText(label, area.right - 4, at - 3);
      ctx.restore();
    }
  };

  function config(data) {
    var unit = data.percent ? "%" : "";
    var stacked = !!data.stacked;
    var line = data.type === "line";
    var values = [];
    data.series.forEach(function (s) {
      s.data.forEach(function (v) { if (v !== null) { values.push(v); } });
    });
    if (data.target !== null && data.target !== undefined) {
      values.push(data.target);
    }
    var y = {
      beginAtZero: true,
      stacked: stacked,
      ticks: {
        maxTicksLimit: 6,
        callback: function (value) { return value + unit; }
      },
      grid: { color: "rgba(0, 0, 0, 0.06)" }
    };
    if (data.percent && (stacked || Math.max.apply(null, values.concat([0])) > 60)) {
      y.max = 100;
    }
    return {
      type: data.type,
      data: {
        labels: data.labels,
        datasets: data.series.map(function (s) {
          return {
            label: s.label,
            data: s.data,
            borderColor: s.colour,
            backgroundColor: s.colour,
            borderWidth: line ? 2 : 0,
            pointRadius: line ? 2.5 : 0,
            pointHoverRadius: 5,
            tension: 0,
            spanGaps: true
          };
        })
      },
      plugins: [goal],
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: {
            stacked: stacked,
            ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 8 },
            grid: { display: false }
          },
          y: y
        },
        plugins: {
          legend: {
            display: data.series.length > 1,
            position: "bottom",
            labels: {
              boxWidth: 10,
              boxHeight: 10,
              usePointStyle: true,
              font: { size: 11 },
              // Long part names are shortened in the legend (the tooltip and table have them).
              generateLabels: function (chart) {
                var items = window.Chart.defaults.plugins.legend.labels.generateLabels(chart);
                var room = chart.width < 420 ? 24 : 44;
                items.forEach(function (item) {
                  if (item.text && item.text.length > room) {
                    item.text = item.text.slice(0, room - 1) + "…";
                  }
                });
                return items;
              }
            }
          },
          tooltip: {
            callbacks: {
              label: function (item) {
                var v = item.raw;
                return item.dataset.label + ": " + (v === null ? "—" : v + unit);
              }
            }
          },
          analyticsGoal: { value: data.target, label: data.targetLabel }
        }
      }
    };
  }

  function draw(root) {
    var canvases = [];
    if (root.matches && root.matches("canvas[data-analytics-chart]")) {
      canvases.push(root);
    }
    if (root.querySelectorAll) {
      root.querySelectorAll("canvas[data-analytics-chart]").forEach(function (c) { canvases.push(c); });
    }
    if (!canvases.length) {
      return;
    }
    withChart(function () {
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
      canvases.forEach(function (canvas) {
        if (!canvas.isConnected || window.Chart.getChart(canvas)) {
          return;
        }
        new window.Chart(canvas, config(JSON.parse(canvas.getAttribute("data-series"))));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:load", function (event) {
    if (event.target) {
      draw(event.target);
    }
  });
  // A card that could not be computed says so instead of spinning for ever.
  document.addEventListener("htmx:responseError", function (event) {
    var card = event.detail.elt;
    if (!card || !card.classList || !card.classList.contains("metric-card")) {
      return;
    }
    var busy = card.querySelector("[aria-busy]");
    if (busy) {
      busy.removeAttribute("aria-busy");
      busy.className = "card-error";
      busy.textContent = card.getAttribute("data-error") || "";
    }
  });
})();
