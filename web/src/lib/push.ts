// Web Push for alerts in this browser: registers /sw.js (scope "/"), subscribes with the
// server's VAPID key and saves the subscription for the signed-in user (sentinel/api/push.py).
// Browser-only, no dependencies. The server pushes the alerts this user may see (their scopes
// and camera limits), encrypted for this browser; the worker shows them (public/sw.js).

const API = "/api/v1";
const WORKER = "/sw.js";

type SavedSubscription = { id: string; endpoint: string };

function supported(): string | null {
  if (typeof window === "undefined") return "Push notifications work only in a browser.";
  if (!window.isSecureContext) return "Push notifications need HTTPS (or localhost).";
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window))
    return "This browser cannot receive push notifications.";
  return null;
}

/** The VAPID key (base64url, no padding) as the bytes pushManager.subscribe wants. */
function keyBytes(base64url: string): Uint8Array<ArrayBuffer> {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
  const out = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function sameBytes(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (a === null || a.byteLength !== b.byteLength) return false;
  const view = new Uint8Array(a);
  return view.every((v, i) => v === b[i]);
}

async function reason(answer: Response): Promise<string> {
  try {
    const body = (await answer.json()) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail))
      return body.detail.map((d: { msg?: string }) => d.msg ?? "invalid").join("; ");
  } catch {
    // not JSON
  }
  return `the server answered ${answer.status}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function registration(): Promise<ServiceWorkerRegistration> {
  const found = await navigator.serviceWorker.getRegistration("/");
  if (found?.active?.scriptURL.endsWith(WORKER)) return found;
  await navigator.serviceWorker.register(WORKER, { scope: "/" });
  return navigator.serviceWorker.ready;
}

/**
 * Turns alert pushes on for this browser (asks for the notification permission if needed).
 * Idempotent: calling it again re-saves the same subscription. Returns a message for people.
 */
export async function enablePush(csrfToken: string): Promise<string> {
  const unsupported = supported();
  if (unsupported) return unsupported;
  let permission = Notification.permission;
  if (permission === "default") permission = await Notification.requestPermission();
  if (permission !== "granted")
    return "Notifications are blocked for this site; allow them in the browser's settings.";
  try {
    const reg = await registration();
    const keyAnswer = await fetch(`${API}/push/vapid-key`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!keyAnswer.ok) return `Push notifications are unavailable: ${await reason(keyAnswer)}.`;
    const { public_key } = (await keyAnswer.json()) as { public_key: string };
    const applicationServerKey = keyBytes(public_key);
    let subscription = await reg.pushManager.getSubscription();
    const madeFor = subscription?.options.applicationServerKey ?? null;
    if (subscription && !sameBytes(madeFor, applicationServerKey)) {
      await subscription.unsubscribe(); // made with another server key: useless now
      subscription = null;
    }
    subscription ??= await reg.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey,
    });
    const saved = await fetch(`${API}/push/subscriptions`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRF-Token": csrfToken,
      },
      body: JSON.stringify(subscription.toJSON()),
    });
    if (!saved.ok) return `The server refused this subscription: ${await reason(saved)}.`;
    return "Alert notifications are on for this browser.";
  } catch (err) {
    return `Push notifications could not be turned on: ${message(err)}.`;
  }
}

/** Turns alert pushes off for this browser: forgets it on the server, then unsubscribes. */
export async function disablePush(csrfToken: string): Promise<string> {
  const unsupported = supported();
  if (unsupported) return unsupported;
  try {
    const reg = await navigator.serviceWorker.getRegistration("/");
    const subscription = reg ? await reg.pushManager.getSubscription() : null;
    if (!subscription) return "Alert notifications were not on for this browser.";
    const listed = await fetch(`${API}/push/subscriptions`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (listed.ok) {
      const mine = (await listed.json()) as SavedSubscription[];
      for (const saved of mine.filter((s) => s.endpoint === subscription.endpoint)) {
        const gone = await fetch(`${API}/push/subscriptions/${encodeURIComponent(saved.id)}`, {
          method: "DELETE",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": csrfToken },
        });
        if (!gone.ok && gone.status !== 404)
          return `The server did not forget this browser: ${await reason(gone)}.`;
      }
    }
    await subscription.unsubscribe();
    return "Alert notifications are off for this browser.";
  } catch (err) {
    return `Push notifications could not be turned off: ${message(err)}.`;
  }
}
