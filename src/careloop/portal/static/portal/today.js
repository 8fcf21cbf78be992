// Today page: after a card was swapped in by htmx (a dose answered, a reading saved or
// refused), move the focus to its message so that screen readers announce it, and to the
// first refused field when there is one.
(function () {
  "use strict";
  // htmx carries some attributes of a swapped element over to its replacement with the same id
  // while it settles; a "style" copied that way is an inline style, which the CSP refuses.
  if (window.htmx) {
    window.htmx.config.attributesToSettle = ["class", "width", "height"];
  }
  document.addEventListener("htmx:afterSwap", function (event) {
    var card = event.detail.target;
    if (!card || !card.querySelector) return;
    var swapped = document.getElementById(card.id) || card;
    var bad = swapped.querySelector(".has-error input, .has-error select");
    if (bad) { bad.focus(); return; }
    var message = swapped.querySelector(".feedback");
    if (message) {
      message.setAttribute("tabindex", "-1");
      message.focus();
    }
  });
})();
