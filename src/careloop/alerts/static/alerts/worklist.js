// The worklist: the urgent section refreshes itself (htmx polling) unless the nurse is busy in it.
(function () {
  "use strict";
  // htmx carries an element's old style="" over to its replacement while settling; the CSP
  // (style-src 'self') refuses that, and a textarea the nurse resized has one. Settle the rest.
  if (window.htmx) {
    window.htmx.config.attributesToSettle = ["class", "width", "height"];
  }
  function busy(section) {
    if (section.querySelector("details[open], input[type=checkbox]:checked")) {
      return true;
    }
    var active = document.activeElement;
    return Boolean(active && active !== document.body && section.contains(active));
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "section-urgent" && busy(elt)) {
      event.preventDefault();
    }
  });
  // Ticking a row shows how many are ticked on the assign button.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("input[type=checkbox][form=bulk]")) {
      return;
    }
    var ticked = document.querySelectorAll("input[type=checkbox][form=bulk]:checked").length;
    var button = document.querySelector("[data-testid=bulk-submit]");
    if (button) {
      button.setAttribute("data-count", String(ticked));
      button.disabled = ticked === 0;
    }
  });
})();
