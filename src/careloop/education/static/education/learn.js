// Learn: report a read-through once the reader reaches the end of an item or has stayed long
// enough. The open itself is recorded by the server when the page is served (also without JS).
(function () {
  "use strict";
  var article = document.querySelector("[data-read-tracker]");
  if (!article) { return; }
  var url = article.getAttribute("data-read-url");
  var wanted = parseInt(article.getAttribute("data-read-seconds"), 10) || 45;
  var end = article.querySelector("[data-read-end]");
  var done = article.querySelector("[data-read-done]");
  var started = Date.now();
  var sent = false;
  var timer = null;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function report() {
    if (sent) { return; }
    sent = true;
    if (timer) { window.clearTimeout(timer); }
    var body = new URLSearchParams();
    body.set("seconds", String(Math.round((Date.now() - started) / 1000)));
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf(), "Accept": "application/json" },
      body: body
    }).then(function (response) {
      if (response.ok && done) { done.hidden = false; }
      else if (!response.ok) { sent = false; }
    }).catch(function () { sent = false; });
  }

  if (end && "IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        // The end counts only once the reader has scrolled (a short item fits the screen,
        // then the time rule applies).
        if (entry.isIntersecting && (window.scrollY > 0 || Date.now() - started > 8000)) {
          observer.disconnect();
          report();
        }
      });
    });
    observer.observe(end);
    window.addEventListener("scroll", function () {
      if (!sent && end.getBoundingClientRect().top < window.innerHeight) { report(); }
    }, { passive: true });
  }
  timer = window.setTimeout(report, wanted * 1000);
})();
