// The segments page: members per segment over the last 90 days, one line per segment. The data
// is the canvas's data-series attribute (the CSP allows no inline script).
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;
  // An accessible palette (Okabe–Ito), one colour per segment.
  var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];

  function draw() {
    var canvas = document.querySelector("canvas[data-segments-chart]");
    if (!canvas) {
      return;
    }
    var data = JSON.parse(canvas.getAttribute("data-series"));
    window.CareLoop.withChart(chartSrc, function () {
      if (window.Chart.getChart(canvas)) {
        return;
      }
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: data.labels,
          datasets: data.series.map(function (s, i) {
            var colour = COLOURS[i % COLOURS.length];
            var known = s.data.filter(function (v) { return v !== null; }).length;
            return {
              label: s.label,
              data: s.data,
              borderColor: colour,
              backgroundColor: colour,
              borderWidth: 2,
              pointRadius: known < 3 ? 4 : 0,  // a short history still shows
              pointHoverRadius: 4,
              tension: 0,
              spanGaps: true
            };
          })
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          interaction: { mode: "index", intersect: false },
          scales: {
            x: { ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 }, grid: { display: false } },
            y: { beginAtZero: true, ticks: { precision: 0, maxTicksLimit: 6 } }
          },
          plugins: {
            legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true } }
          }
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
