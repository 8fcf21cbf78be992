// Portal sign-in, sign-out and Me: forget the offline copy, web push on/off, read-aloud hint.
(function () {
  "use strict";

  function forgetOfflineCopy() {
    if (!document.querySelector("[data-clear-offline]")) return;
    if ("caches" in window) {
      caches.keys().then(function (names) {
        names.forEach(function (name) {
          if (name.indexOf("careloop-portal") === 0 && name.indexOf("-shell") === -1) caches.delete(name);
        });
      }).catch(function () {});
    }
    if ("serviceWorker" in navigator && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({ type: "clear" });
    }
  }

  function csrf() {
    var meta = document.querySelector("meta[name=csrf-token]");
    return meta ? meta.getAttribute("content") : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(body)
    }).then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); });
  }

  function keyBytes(base64url) {
    var padded = base64url + "===".slice((base64url.length + 3) % 4);
    var raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function push() {
    var box = document.querySelector("[data-push]");
    if (!box) return;
    var key = box.getAttribute("data-key");
    var status = box.querySelector("[data-push-status]");
    var on = box.querySelector("[data-push-enable]");
    var off = box.querySelector("[data-push-disable]");
    if (!key || !status || !on || !off) return;
    var say = function (which) { status.textContent = status.getAttribute("data-text-" + which); };
    var show = function (enabled) {
      on.hidden = enabled; off.hidden = !enabled; say(enabled ? "on" : "off");
    };
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      on.hidden = true; off.hidden = true; say("unsupported");
      return;
    }
    show(box.getAttribute("data-on") === "1");
    on.addEventListener("click", function () {
      on.disabled = true;
      Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") { say("denied"); return null; }
        return navigator.serviceWorker.ready.then(function (reg) {
          return reg.pushManager.getSubscription().then(function (existing) {
            return existing || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
          });
        }).then(function (sub) {
          return post(box.getAttribute("data-subscribe"), sub.toJSON());
        }).then(function () { show(true); });
      }).catch(function () { say("unsupported"); }).then(function () { on.disabled = false; });
    });
    off.addEventListener("click", function () {
      off.disabled = true;
      navigator.serviceWorker.ready.then(function (reg) {
        return reg.pushManager.getSubscription();
      }).then(function (sub) {
        var endpoint = sub ? sub.endpoint : "";
        return (sub ? sub.unsubscribe() : Promise.resolve(true)).then(function () {
          return post(box.getAttribute("data-unsubscribe"), { endpoint: endpoint });
        });
      }).then(function (answer) { show(Boolean(answer && answer.subscribed)); })
        .catch(function () { say("unsupported"); })
        .then(function () { off.disabled = false; });
    });
  }

  function readAloudHint() {
    var hint = document.querySelector("[data-read-aloud-hint]");
    if (hint && "speechSynthesis" in window) hint.hidden = false;
  }

  document.addEventListener("DOMContentLoaded", function () {
    forgetOfflineCopy();
    push();
    readAloudHint();
  });
})();
