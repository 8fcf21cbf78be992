// Messages: refuse too-large files before uploading, send a form only once, insert reply templates.
(function () {
  "use strict";

  function checkFiles(form) {
    var ok = true;
    form.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      var max = parseInt(input.getAttribute("data-max-bytes"), 10);
      var note = form.querySelector("[data-file-error]");
      var big = Array.prototype.some.call(input.files || [], function (f) { return f.size > max; });
      if (note) {
        note.hidden = !big;
        note.textContent = big ? input.getAttribute("data-too-large") : "";
      }
      if (big) ok = false;
    });
    return ok;
  }

  function guardForms() {
    document.querySelectorAll("form[data-send-form]").forEach(function (form) {
      form.querySelectorAll("input[type=file]").forEach(function (input) {
        input.addEventListener("change", function () { checkFiles(form); });
      });
      form.addEventListener("submit", function (event) {
        if (!checkFiles(form)) { event.preventDefault(); return; }
        var button = form.querySelector("button[type=submit]");
        if (button) {
          if (button.getAttribute("aria-busy") === "true") { event.preventDefault(); return; }
          button.setAttribute("aria-busy", "true");
        }
      });
    });
  }

  function replyTemplates() {
    document.querySelectorAll("[data-template-picker]").forEach(function (select) {
      select.addEventListener("change", function () {
        var option = select.options[select.selectedIndex];
        var target = document.getElementById(select.getAttribute("data-template-picker"));
        if (!option || !option.value || !target) return;
        var text = option.getAttribute("data-body") || "";
        var start = target.selectionStart || target.value.length;
        target.value = target.value.slice(0, start) + text + target.value.slice(target.selectionEnd || start);
        target.focus();
        select.selectedIndex = 0;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    guardForms();
    replyTemplates();
  });
})();
