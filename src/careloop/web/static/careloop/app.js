// CareLoop staff pages: CSRF for htmx requests, confirmations, small conveniences.
(function () {
  "use strict";
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });
  // A tab loaded by htmx becomes the selected tab once its panel has arrived.
  document.addEventListener("htmx:afterRequest", function (event) {
    var tab = event.detail.elt;
    if (!event.detail.successful || !tab || tab.getAttribute("role") !== "tab") {
      return;
    }
    var list = tab.closest("[role=tablist]");
    if (!list) {
      return;
    }
    list.querySelectorAll("[role=tab]").forEach(function (other) {
      other.setAttribute("aria-selected", other === tab ? "true" : "false");
    });
  });
  // The language switch returns to the page as it is now (tabs and searches change the address).
  document.addEventListener("submit", function (event) {
    if (event.target.id === "language-form") {
      var next = event.target.querySelector('input[name="next"]');
      if (next) {
        next.value = window.location.pathname + window.location.search;
      }
    }
  }, true);
  // Any form or button with data-confirm asks before it acts.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);
  // After a refused save, put the cursor in the first field that needs fixing.
  document.addEventListener("DOMContentLoaded", function () {
    var bad = document.querySelector(
      ".field.has-error input:not([type=checkbox]), .field.has-error select, .field.has-error textarea"
    );
    if (bad) {
      bad.focus();
      bad.scrollIntoView({ block: "center" });
    }
  });
  // Auto-submit filter selects on change when there is no htmx.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("[data-autosubmit]") && !window.htmx) {
      el.form.submit();
    }
  });
})();

// Chart.js is loaded once, on demand, from the address a page's script gives, and whatever
// waited for it is drawn once it has arrived (the vitals tab, the analytics cards).
window.CareLoop = window.CareLoop || {};
(function (ns) {
  "use strict";
  var waiting = null;
  ns.withChart = function (src, done) {
    if (window.Chart) {
      done();
      return;
    }
    if (!src) {
      return;
    }
    if (waiting === null) {
      waiting = [];
      var script = document.createElement("script");
      script.src = src;
      script.onload = function () {
        var queued = waiting;
        waiting = null;
        queued.forEach(function (fn) { fn(); });
      };
      document.head.appendChild(script);
    }
    waiting.push(done);
  };
})(window.CareLoop);
