// CareLoop portal service worker: the shell (CSS, JS, icon) from the cache, Today network-first
// with its last copy kept for offline reading. Nothing else is cached; sign-in and sign-out
// pages tell it to forget everything (another person may use this phone next).
"use strict";
var VERSION = {{ version|safe }};
var SHELL = {{ shell|safe }};
var TODAY = {{ scope|safe }};
var SHELL_CACHE = VERSION + "-shell";
var PAGE_CACHE = VERSION + "-pages";
var PREFIX = "careloop-portal";

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(SHELL_CACHE)
      .then(function (cache) { return cache.addAll(SHELL); })
      .then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.map(function (name) {
        if (name.indexOf(PREFIX) === 0 && name !== SHELL_CACHE && name !== PAGE_CACHE) {
          return caches.delete(name);
        }
        return null;
      }));
    }).then(function () { return self.clients.claim(); })
  );
});

function forgetAll() {
  return caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n.indexOf(PREFIX) === 0; })
      .map(function (n) { return caches.delete(n); }));
  });
}

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "clear") {
    event.waitUntil(forgetAll());
  }
});

function todayNetworkFirst(request) {
  return fetch(request).then(function (response) {
    // Keep only a real copy of Today: not a redirect to the sign-in page, not an error.
    if (response.ok && !response.redirected && response.type === "basic") {
      var copy = response.clone();
      caches.open(PAGE_CACHE).then(function (cache) { cache.put(TODAY, copy); });
    }
    return response;
  }).catch(function () {
    return caches.open(PAGE_CACHE).then(function (cache) {
      return cache.match(TODAY).then(function (hit) {
        return hit || new Response("<!doctype html><title>Offline</title><p>You are offline. / 您已离线。</p>",
          { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
      });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (SHELL.indexOf(url.pathname) !== -1) {
    event.respondWith(caches.open(SHELL_CACHE).then(function (cache) {
      return cache.match(url.pathname).then(function (hit) {
        return hit || fetch(request);
      });
    }));
    return;
  }
  if (url.pathname === TODAY && url.search === "") {
    event.respondWith(todayNetworkFirst(request));
  }
});

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data ? event.data.text() : "" }; }
  var title = data.title || "CareLoop";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    tag: data.tag || undefined,
    lang: data.lang || undefined,
    icon: SHELL[SHELL.length - 1],
    data: { url: data.url || TODAY }
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = (event.notification.data && event.notification.data.url) || TODAY;
  event.waitUntil(self.clients.openWindow(target));
});
