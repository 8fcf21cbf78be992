// The risk pages' charts: the model card's calibration (mean predicted risk against the
// observed rate per bin) and the drift page's PSI over time with its warning line. The data is
// each canvas's data-series attribute (the CSP allows no inline script).
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;

  function calibration(data) {
    return {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { type: "bar", label: data.predicted_label, data: data.predicted, backgroundColor: "rgba(1, 114, 173, 0.55)" },
          { type: "line", label: data.observed_label, data: data.observed, borderColor: "#c0392b", backgroundColor: "#c0392b", spanGaps: true }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1 } }
      }
    };
  }

  function drift(data) {
    return {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          { label: data.psi_label, data: data.psi, borderColor: "#0172ad", backgroundColor: "#0172ad" },
          {
            label: data.warn_label,
            data: data.labels.map(function () { return data.warn_at; }),
            borderColor: "#c0392b",
            borderDash: [6, 4],
            pointRadius: 0
          }
        ]
      },
      options: { responsive: true, maintainAspectRatio: false, scales: { y: { min: 0 } } }
    };
  }

  function draw() {
    var canvases = document.querySelectorAll("canvas[data-risk-chart]");
    if (!canvases.length) {
      return;
    }
    window.CareLoop.withChart(chartSrc, function () {
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
      canvases.forEach(function (canvas) {
        if (window.Chart.getChart(canvas)) {
          return;
        }
        var data = JSON.parse(canvas.getAttribute("data-series"));
        var kind = canvas.getAttribute("data-risk-chart");
        new window.Chart(canvas, kind === "drift" ? drift(data) : calibration(data));
      });
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
