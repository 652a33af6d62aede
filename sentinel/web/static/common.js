// Shared by the annotation pages: the JSON API, DOM helpers, and the boxes between the API's
// shape and the editor's. Calls go to /api/v1 with the session cookie; state-changing ones echo
// the CSRF token (the sentinel_csrf cookie) in X-CSRF-Token, as sentinel/api/security.py requires.

export const API = "/api/v1";
export const SIGNIN = "/annotate/signin";

// ---------------------------------------------------------------------------------------------
// HTTP

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "sentinel_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export function toSignIn() {
  const here = location.pathname + location.search;
  location.assign(`${SIGNIN}?next=${encodeURIComponent(here)}`);
}

/** Calls the API; returns {ok, status, data}. A 401 (session gone) sends the visitor to sign in. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { ok: false, status: 0, data: { detail: `the server cannot be reached (${err})` } };
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text };
    }
  }
  if (response.status === 401 && !path.startsWith("/auth/")) {
    toSignIn();
  }
  return { ok: response.ok, status: response.status, data };
}

/** The reason of an error answer, for people: FastAPI's detail (a string or a list). */
export function reason(res) {
  const detail = res.data && res.data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const loc = (e.loc || []).filter((p) => p !== "body").join(".");
        return loc ? `${loc}: ${e.msg}` : String(e.msg);
      })
      .join("; ");
  }
  if (res.status === 0) return "the server cannot be reached";
  return `HTTP ${res.status}`;
}

/** The boxes a 422 names (loc [..., "boxes", i]): [{index, text}], numbered as the page
 * numbers them (from 1), with the API's own "box i:" prefix dropped. */
export function boxErrors(res) {
  const detail = res.data && res.data.detail;
  const out = [];
  if (!Array.isArray(detail)) return out;
  for (const e of detail) {
    const loc = e.loc || [];
    const at = loc.indexOf("boxes");
    if (at >= 0 && Number.isInteger(loc[at + 1])) {
      const index = loc[at + 1];
      const msg = String(e.msg || "").replace(/^box \d+:\s*/, "");
      out.push({ index, text: `Box ${index + 1}${loc.length > at + 2 ? ` (${loc.slice(at + 2).join(".")})` : ""}: ${msg}` });
    }
  }
  return out;
}

export function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

// ---------------------------------------------------------------------------------------------
// Page helpers

export const $ = (sel) => document.querySelector(sel);

export function say(text) {
  const el = $("#status");
  if (el) el.textContent = text;
}

export function showError(text) {
  const el = $("#error");
  if (!el) return;
  el.textContent = text || "";
  el.hidden = !text;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c);
  return node;
}

export function frameUrl(id) {
  return `${API}/annotation/items/${encodeURIComponent(id)}/frame`;
}

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${src}`));
    img.src = src;
  });
}

export function labelColor(label) {
  let h = 0;
  for (const ch of String(label)) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 85%, 55%)`;
}

export function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toISOString().replace("T", " ").slice(0, 19);
}

/** The boxes an item starts from: its latest annotation's, else its pre-labels (to accept). */
export function startingBoxes(item) {
  const ann = item.annotation || item.latest_annotation;
  if (ann && Array.isArray(ann.boxes)) {
    return ann.boxes.map((b) => ({ ...pick(b), score: null, origin: "saved", accepted: true }));
  }
  return (item.prelabels || []).map((b) => ({
    ...pick(b),
    score: typeof b.score === "number" ? b.score : null,
    origin: "prelabel",
    accepted: false,
  }));
}

export function pick(b) {
  return { label: String(b.label), x1: +b.x1, y1: +b.y1, x2: +b.x2, y2: +b.y2 };
}

/** The item version the annotator saw: sent back with a submission (a stale one is a 409). */
export function annotationVersion(item) {
  if (Number.isInteger(item.version)) return item.version;
  const ann = item.annotation || item.latest_annotation;
  return ann && Number.isInteger(ann.version) ? ann.version : 0;
}

export function itemLabels(item, boxes) {
  const labels = Array.isArray(item.labels) && item.labels.length ? [...item.labels] : [];
  for (const b of boxes) if (!labels.includes(b.label)) labels.push(b.label);
  return labels;
}

export function sameBoxes(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function round2(v) {
  return Math.round(v * 100) / 100;
}

export function wire(b) {
  return { label: b.label, x1: round2(b.x1), y1: round2(b.y1), x2: round2(b.x2), y2: round2(b.y2) };
}
