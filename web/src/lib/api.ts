// The JSON API under /api/v1, with the browser's session cookie. State-changing calls echo the
// session's CSRF token (the sentinel_csrf cookie) in X-CSRF-Token, as the gateway requires
// (sentinel/api/security.py). No token is ever kept in local storage or put in a URL.

export const API = "/api/v1";
export const SIGNIN = "/signin";

export type ApiResult<T> =
  | { ok: true; status: number; data: T }
  | { ok: false; status: number; error: string };

export function csrfToken(): string {
  if (typeof document === "undefined") return "";
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "sentinel_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** Sends the visitor to the sign-in page, coming back here afterwards. */
export function toSignIn(): void {
  const here = location.pathname + location.search;
  location.assign(`${SIGNIN}?next=${encodeURIComponent(here)}`);
}

/** The reason of an error answer, for people: FastAPI's detail (a string or a list). */
export function reasonOf(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) =>
        `${(d.loc ?? []).filter((p) => p !== "body").join(".")}: ${d.msg ?? "invalid"}`,
      )
      .join("; ");
  }
  if (status === 0) return "the server cannot be reached";
  if (status === 404) return "not found (or not yours to see)";
  if (status === 403) return "you are not allowed to do this";
  return `the server answered ${status}`;
}

type Body = FormData | Record<string, unknown> | unknown[] | undefined;

/** Calls the API. A 401 outside /auth sends the visitor to sign in (the session is gone). */
export async function api<T>(
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  path: string,
  body?: Body,
  init?: { signal?: AbortSignal; redirectOn401?: boolean },
): Promise<ApiResult<T>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response: Response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      credentials: "same-origin",
      body: payload,
      signal: init?.signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    return { ok: false, status: 0, error: reasonOf(0, null) };
  }
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 300) };
    }
  }
  if (response.status === 401 && !path.startsWith("/auth/") && init?.redirectOn401 !== false) {
    toSignIn();
  }
  if (!response.ok) return { ok: false, status: response.status, error: reasonOf(response.status, data) };
  return { ok: true, status: response.status, data: data as T };
}

/** A query string from the defined values of `params` ("" when none). */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export interface Me {
  subject: string;
  kind: string;
  role: string | null;
  scopes: string[];
  cameras: string[] | null;
}

export function can(me: Me | null, scope: string): boolean {
  return !!me && me.scopes.includes(scope);
}

/** Formats an ISO time for people, in the browser's zone. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}
