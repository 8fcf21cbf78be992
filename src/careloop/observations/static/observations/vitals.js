// The patient page's vitals tab: a Chart.js chart per kind of reading, and the reading form.
//
// Each chart's data is its canvas's data-series attribute (htmx drops <script> elements, JSON
// ones included, from swapped content, and the CSP allows no inline script). The tab arrives by
// htmx, and the charts are swapped again when the time range changes or a reading is saved, so
// everything is (re)drawn on htmx:load. Chart.js is fetched only once a chart is on the page.
// Canvases carry no id: htmx would carry the old canvas's attributes across a swap, and Chart.js's
// sizing style would then be an inline style, which the CSP refuses.
(function () {
  "use strict";
  var self = document.currentScript;
  var chartSrc = self ? self.getAttribute("data-chart-src") : null;
  var drawn = [];

  var COLOURS = {
    value: "#175cd3",
    systolic: "#b42318",
    diastolic: "#175cd3",
    fasting: "#067647",
    random: "#6941c6",
    postprandial: "#b54708",
    band: "rgba(6, 118, 71, 0.10)",
    bandSystolic: "rgba(180, 35, 24, 0.07)",
    bandDiastolic: "rgba(23, 92, 211, 0.08)",
    line: "#93370d"
  };

  function withChart(done) {
    window.CareLoop.withChart(chartSrc, done);
  }

  function fixed(value, decimals) {
    return Number(value).toFixed(decimals);
  }

  // Targets and limits drawn behind the readings.
  var backdrop = {
    id: "vitalsBackdrop",
    beforeDatasetsDraw: function (chart, args, options) {
      var y = chart.scales.y;
      var area = chart.chartArea;
      var ctx = chart.ctx;
      ctx.save();
      (options.bands || []).forEach(function (band) {
        var top = Math.max(y.getPixelForValue(band.to), area.top);
        var bottom = Math.min(y.getPixelForValue(band.from), area.bottom);
        if (bottom > top) {
          ctx.fillStyle = band.colour;
          ctx.fillRect(area.left, top, area.right - area.left, bottom - top);
          ctx.strokeStyle = band.edge;
          ctx.setLineDash([4, 4]);
          ctx.beginPath();
          ctx.moveTo(area.left, top);
          ctx.lineTo(area.right, top);
          ctx.stroke();
        }
      });
      (options.lines || []).forEach(function (line) {
        var at = y.getPixelForValue(line.value);
        if (at < area.top || at > area.bottom) {
          return;
        }
        ctx.strokeStyle = COLOURS.line;
        ctx.setLineDash([6, 4]);
        ctx.beginPath();
        ctx.moveTo(area.left, at);
        ctx.lineTo(area.right, at);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = COLOURS.line;
        ctx.font = "11px " + window.Chart.defaults.font.family;
        ctx.textAlign = "right";
        ctx.fillText(line.label, area.right - 4, at - 4);
      });
      ctx.restore();
    }
  };

  function dataset(label, colour, points, pick, many) {
    return {
      label: label,
      data: points.map(function (p) { return { x: p[0], y: pick(p), p: p }; }),
      borderColor: colour,
      backgroundColor: colour,
      borderWidth: 2,
      pointRadius: many ? 1.5 : 3,
      pointHoverRadius: 5,
      tension: 0.2,
      showLine: true
    };
  }

  function build(data) {
    var pts = data.points;
    var many = pts.length > 120;
    var labels = data.labels;
    var sets = [];
    var bands = [];
    if (data.kind === "bp") {
      sets.push(dataset(labels.systolic, COLOURS.systolic, pts, function (p) { return p[1]; }, many));
      sets.push(dataset(labels.diastolic, COLOURS.diastolic, pts, function (p) { return p[2]; }, many));
      (data.bands || []).forEach(function (b) {
        bands.push({
          from: b.from,
          to: b.to,
          colour: b.series === 0 ? COLOURS.bandSystolic : COLOURS.bandDiastolic,
          edge: b.series === 0 ? COLOURS.systolic : COLOURS.diastolic
        });
      });
    } else if (data.kind === "glucose") {
      ["fasting", "postprandial", "random"].forEach(function (context) {
        var mine = pts.filter(function (p) { return p[3] === context; });
        if (mine.length) {
          var set = dataset(labels[context], COLOURS[context], mine, function (p) { return p[1]; }, many);
          set.showLine = context === "fasting";
          set.pointStyle = context === "fasting" ? "circle" : (context === "postprandial" ? "triangle" : "rectRot");
          set.pointRadius = many ? 2 : 4;
          sets.push(set);
        }
      });
      (data.bands || []).forEach(function (b) {
        bands.push({ from: b.from, to: b.to, colour: COLOURS.band, edge: COLOURS.fasting });
      });
    } else {
      sets.push(dataset(labels.value, COLOURS.value, pts, function (p) { return p[1]; }, many));
    }
    var lines = data.lines || [];
    // Leave room for the targets as well as the readings.
    var values = [];
    sets.forEach(function (s) { s.data.forEach(function (d) { values.push(d.y); }); });
    bands.forEach(function (b) { values.push(b.from, b.to); });
    lines.forEach(function (l) { values.push(l.value); });
    var low = Math.min.apply(null, values);
    var high = Math.max.apply(null, values);
    var pad = (high - low) * 0.08 || 1;
    var tickLabels = {};
    data.ticks.forEach(function (t) { tickLabels[t[0]] = t[1]; });

    function describe(item) {
      var p = item.raw.p;
      if (data.kind === "bp") {
        return item.dataset.label + " " + fixed(item.raw.y, 0) + " " + data.unit;
      }
      var text = fixed(p[1], data.decimals) + " " + data.unit;
      if (data.kind === "glucose") {
        text += " (" + Math.round(p[1] * data.mgdl) + " mg/dL) · " + (labels[p[3]] || p[3]);
      }
      return text;
    }

    return {
      type: "line",
      data: { datasets: sets },
      plugins: [backdrop],
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        parsing: true,
        interaction: { mode: data.kind === "bp" ? "index" : "nearest", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: data.from,
            // A little room on the right: the newest reading is a whole point, not half of one.
            max: data.to + (data.to - data.from) * 0.025,
            afterBuildTicks: function (scale) {
              scale.ticks = data.ticks.map(function (t) { return { value: t[0] }; });
            },
            ticks: {
              autoSkip: true,
              maxRotation: 0,
              callback: function (value) { return tickLabels[value] || ""; }
            },
            grid: { color: "rgba(0, 0, 0, 0.05)" }
          },
          y: {
            suggestedMin: low - pad,
            suggestedMax: high + pad,
            ticks: { maxTicksLimit: 6 },
            grid: { color: "rgba(0, 0, 0, 0.06)" }
          }
        },
        plugins: {
          legend: {
            display: sets.length > 1,
            position: "bottom",
            labels: { boxWidth: 10, boxHeight: 10, usePointStyle: true }
          },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? items[0].raw.p[5] : ""; },
              label: describe,
              footer: function (items) {
                var p = items.length ? items[0].raw.p : null;
                return p ? (data.sources[p[4]] || p[4]) : "";
              }
            }
          },
          vitalsBackdrop: { bands: bands, lines: lines }
        }
      }
    };
  }

  function forget() {
    drawn = drawn.filter(function (chart) {
      if (!chart.canvas || !chart.canvas.isConnected) {
        chart.destroy();
        return false;
      }
      return true;
    });
  }

  function drawCharts(root) {
    var canvases = [];
    if (root.matches && root.matches("canvas[data-vitals-chart]")) {
      canvases.push(root);
    }
    if (root.querySelectorAll) {
      root.querySelectorAll("canvas[data-vitals-chart]").forEach(function (c) { canvases.push(c); });
    }
    if (!canvases.length) {
      return;
    }
    withChart(function () {
      forget();
      window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
      canvases.forEach(function (canvas) {
        if (!canvas.isConnected || window.Chart.getChart(canvas)) {
          return;
        }
        var data = JSON.parse(canvas.getAttribute("data-series"));
        drawn.push(new window.Chart(canvas, build(data)));
      });
    });
  }

  // The reading form shows the fields of the kind chosen (all of them without JavaScript).
  function showKind(form) {
    var select = form.querySelector("select[name=kind]");
    if (!select) {
      return;
    }
    var kind = select.value;
    var units = JSON.parse(form.getAttribute("data-units") || "{}");
    form.querySelectorAll("[data-kinds]").forEach(function (field) {
      field.hidden = field.getAttribute("data-kinds").split(" ").indexOf(kind) < 0;
    });
    var unit = form.querySelector("[data-unit-label]");
    if (unit) {
      unit.textContent = units[kind] ? "(" + units[kind] + ")" : "";
    }
  }

  function prepareForms(root) {
    var forms = [];
    if (root.matches && root.matches("form.reading-form")) {
      forms.push(root);
    }
    if (root.querySelectorAll) {
      root.querySelectorAll("form.reading-form").forEach(function (f) { forms.push(f); });
    }
    forms.forEach(function (form) {
      if (!form.hasAttribute("data-ready")) {
        form.setAttribute("data-ready", "");
        form.addEventListener("change", function (event) {
          if (event.target.name === "kind") {
            showKind(form);
          }
        });
      }
      showKind(form);
    });
  }

  function prepare(root) {
    drawCharts(root);
    prepareForms(root);
  }

  document.addEventListener("DOMContentLoaded", function () { prepare(document); });
  document.addEventListener("htmx:load", function (event) {
    if (event.target) {
      prepare(event.target);
    }
  });
})();
