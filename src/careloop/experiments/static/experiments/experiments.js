// The experiment results page: a forest plot of each arm's difference from the control arm,
// the 95% confidence interval as a floating bar and the estimate as a point. The data is the
// canvas's data-series attribute (the CSP allows no inline script).
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;

  function draw(canvas) {
    var data;
    try {
      data = JSON.parse(canvas.getAttribute("data-series") || "{}");
    } catch (e) {
      return;
    }
    if (!data.labels || !data.labels.length) {
      return;
    }
    var points = data.estimates.map(function (v, i) { return { x: v, y: data.labels[i] }; });
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          {
            type: "bar",
            label: data.interval,
            data: data.intervals,
            backgroundColor: "rgba(31, 119, 180, 0.35)",
            borderColor: "rgba(31, 119, 180, 0.9)",
            borderWidth: 1,
            barPercentage: 0.35
          },
          {
            type: "scatter",
            label: data.estimate,
            data: points,
            backgroundColor: "#000000",
            pointRadius: 4
          }
        ]
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: {
            title: { display: true, text: data.axis },
            grid: {
              color: function (ctx) {
                return ctx.tick && ctx.tick.value === 0 ? "#000000" : "rgba(0, 0, 0, 0.06)";
              }
            }
          },
          y: { type: "category" }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function init() {
    var canvases = document.querySelectorAll("canvas[data-experiment-chart]");
    if (!canvases.length) {
      return;
    }
    window.CareLoop.withChart(chartSrc, function () {
      canvases.forEach(draw);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
