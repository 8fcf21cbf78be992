// The operations page: the send-success bar chart, drawn again after every htmx refresh.
// Its data is the canvas's data-series attribute (htmx drops <script> elements, JSON ones
// included, from swapped content). The canvas has no id on purpose: htmx carries the
// attributes of an element with the same id across a swap, and Chart.js's sizing style on the
// old canvas would then be an inline style, which the CSP refuses.
(function () {
  "use strict";
  function draw() {
    var canvas = document.querySelector("canvas[data-chart=channel-success]");
    if (!canvas || !window.Chart) {
      return;
    }
    var data = JSON.parse(canvas.getAttribute("data-series"));
    var old = window.Chart.getChart(canvas);
    if (old) {
      old.destroy();
    }
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.series.map(function (s) {
          return { label: s.label, data: s.data };
        })
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          y: {
            min: 0,
            max: 100,
            title: { display: true, text: data.axis },
            ticks: { callback: function (value) { return value + "%"; } }
          }
        }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  // htmx:load fires on content it has just put in the page (the refreshed figures).
  document.addEventListener("htmx:load", function (event) {
    if (event.target && event.target.querySelector && event.target.querySelector("canvas[data-chart]")) {
      draw();
    }
  });
})();
