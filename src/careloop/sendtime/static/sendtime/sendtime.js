// Send-time report charts: one Chart.js chart per canvas[data-sendtime-chart], its data in the
// canvas's data-series attribute (the CSP allows no inline script).
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;

  function config(data) {
    var unit = data.percent ? "%" : "";
    var line = data.type === "line";
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
            spanGaps: true
          };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: {
            beginAtZero: true,
            max: data.percent ? 100 : undefined,
            ticks: { maxTicksLimit: 6, callback: function (v) { return v + unit; } }
          }
        },
        plugins: { legend: { position: "bottom" } }
      }
    };
  }

  function draw() {
    document.querySelectorAll("canvas[data-sendtime-chart]").forEach(function (canvas) {
      if (canvas.getAttribute("data-drawn")) {
        return;
      }
      canvas.setAttribute("data-drawn", "1");
      new window.Chart(canvas, config(JSON.parse(canvas.getAttribute("data-series"))));
    });
  }

  function start() {
    if (document.querySelector("canvas[data-sendtime-chart]")) {
      window.CareLoop.withChart(chartSrc, draw);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
