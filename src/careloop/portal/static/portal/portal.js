// The patient portal's small script: service worker, offline notice, read-aloud.
(function () {
  "use strict";

  function registerServiceWorker() {
    var url = document.body.getAttribute("data-sw");
    if (!url || !("serviceWorker" in navigator)) return;
    navigator.serviceWorker.register(url, { scope: url.replace(/sw\.js$/, "") }).catch(function () {});
  }

  function offlineNotice() {
    var note = document.querySelector("[data-offline-note]");
    if (!note) return;
    var update = function () { note.hidden = navigator.onLine; };
    window.addEventListener("online", update);
    window.addEventListener("offline", update);
    update();
  }

  function readAloud() {
    var button = document.querySelector("[data-read-aloud]");
    if (!button || !("speechSynthesis" in window)) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      if (window.speechSynthesis.speaking) { window.speechSynthesis.cancel(); return; }
      var main = document.getElementById("main");
      var text = main ? main.innerText : document.body.innerText;
      var utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = document.documentElement.lang || "zh-CN";
      utterance.rate = document.documentElement.classList.contains("elder") ? 0.85 : 1;
      window.speechSynthesis.speak(utterance);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    registerServiceWorker();
    offlineNotice();
    readAloud();
  });
})();
