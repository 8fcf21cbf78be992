// Character counters for community text boxes (no inline script: CSP).
(function () {
  "use strict";
  function bind(box) {
    var note = document.querySelector('[data-counter-for="' + box.id + '"]');
    var max = parseInt(box.getAttribute("maxlength") || "0", 10);
    if (!note || !max) { return; }
    var update = function () {
      var used = box.value.length;
      note.textContent = used + " / " + max;
      note.classList.toggle("over", used > max);
    };
    box.addEventListener("input", update);
    update();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-counter]").forEach(bind);
  });
})();
