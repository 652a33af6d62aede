/* Sentinel's service worker: shows alert pushes and opens them. Plain JS, no build step;
 * src/lib/push.ts registers it at scope "/".
 *
 * It caches nothing: there is no fetch handler, so every request (API answers above all) goes
 * to the network exactly as without a worker, and the caches a former version might have left
 * are deleted on activation. A push carries {title, body, alert_id, camera_id, url} and no
 * token (sentinel/notify/push.py); the page it opens asks for a login like any other.
 */
"use strict";

const FALLBACK_URL = "/review";

self.addEventListener("install", () => {
  self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

/** A path of this origin, or the fallback: a push never sends the user elsewhere. */
function sameOriginUrl(value) {
  if (typeof value !== "string" || value === "") return FALLBACK_URL;
  try {
    const url = new URL(value, self.location.origin);
    if (url.origin !== self.location.origin) return FALLBACK_URL;
    return url.pathname + url.search + url.hash;
  } catch (_err) {
    return FALLBACK_URL;
  }
}

function text(value, fallback, max) {
  return typeof value === "string" && value.trim() !== "" ? value.slice(0, max) : fallback;
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (_err) {
    data = {};
  }
  if (data === null || typeof data !== "object") data = {};
  const alertId = text(data.alert_id, "", 64);
  const options = {
    body: text(data.body, "A new alert needs review.", 600),
    // One notification per alert: a repeated push replaces it instead of stacking up.
    tag: alertId || "sentinel-alert",
    icon: "/icon-192.png",
    badge: "/icon-192.png",
    timestamp: Date.now(),
    data: {
      url: sameOriginUrl(data.url),
      alert_id: alertId,
      camera_id: text(data.camera_id, "", 64),
    },
  };
  event.waitUntil(
    self.registration.showNotification(text(data.title, "Sentinel alert", 200), options),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const target = new URL(sameOriginUrl(data.url), self.location.origin).href;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).origin !== self.location.origin) continue;
        // An open dashboard tab: bring it forward, on the alert.
        const focused = await client.focus();
        if (focused && "navigate" in focused) {
          try {
            await focused.navigate(target);
          } catch (_err) {
            // An uncontrolled tab cannot be navigated from here; focused is enough.
          }
        }
        return;
      }
      await self.clients.openWindow(target);
    })(),
  );
});
