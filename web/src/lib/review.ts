// Review and search pages: API shapes, URL filters, live merging, timeline geometry, the
// server-sent-event reader of POST /ask and media probing. Pure where it can be (no React).
import { API, csrfToken, reasonOf, toSignIn } from "./api";
import type { LiveMessage } from "./live";

export interface Alert {
  id: string;
  event_id: string;
  incident_id: string | null;
  camera_id: string;
  label: string;
  created_at: string;
  updated_at: string;
  status: string;
  alert: boolean;
  severity: string;
  summary: string;
  reasons: string[];
  recommended_action: string;
  decided_by: string;
  llm_status: string;
  acknowledged_by: string | null;
  acknowledged_at: string | null;
  verdict: string | null;
  verdict_note: string | null;
  rule_id: string | null;
  rule_version: number | null;
  rule_explanation: string | null;
}

export interface AlertPage {
  items: Alert[];
  next_cursor: string | null;
}

export interface Camera {
  id: string;
  name: string | null;
}

export interface Segment {
  id: string;
  start_at: string;
  end_at: string;
  duration_s: number;
  size: number;
  codec: string;
  kind: string;
  archived: boolean;
}

export interface Timeline {
  since: string;
  until: string;
  segments: Segment[];
  gaps: { start: string; end: string }[];
  covered_s: number;
}

export interface Export {
  id: string;
  camera_id: string;
  name: string;
  start_at: string;
  end_at: string;
  size: number;
  created_by: string;
  created_at: string;
  status: string;
  error: string | null;
}

export interface SearchHit {
  id: string;
  kind: "event" | "incident";
  score: number;
  snippet: string;
  camera_id: string;
  label: string;
  started_at: string;
  snapshot_url: string | null;
}

export interface SearchResults {
  items: SearchHit[];
  index_backlog: number;
}

export interface Citation {
  n: number;
  kind: "event" | "incident" | "document";
  id: string;
  text: string;
  score?: number | null;
  camera_id?: string | null;
  label?: string | null;
  started_at?: string | null;
  document?: string | null;
  version?: number | null;
  section?: string | null;
}

export interface AskAnswer {
  question: string;
  answer: string;
  mode: "llm" | "retrieval_only" | "nothing_found";
  citations: Citation[];
  count: Record<string, unknown> | null;
  llm_error: string | null;
}

export interface Transcript {
  text: string;
  language: string;
  format: string;
  codec: string;
  duration_s: number;
  speech_s: number;
  seconds: number;
}

export interface VoiceAnswer {
  transcript: Transcript;
  answer: string;
  mode: AskAnswer["mode"];
  citations: Citation[];
  count: Record<string, unknown> | null;
}

// ---------------------------------------------------------------------------------------------
// Filters in the URL

export const STATUSES = ["open", "acknowledged", "withdrawn"] as const;
export const SEVERITIES = ["info", "low", "medium", "high", "critical"] as const;
export const VERDICTS = ["true_positive", "false_positive", "none"] as const;

export interface ReviewFilters {
  camera_id: string;
  label: string;
  status: string;
  severity: string;
  verdict: string;
  since: string; // ISO (UTC) or ""
  until: string;
}

export const NO_FILTERS: ReviewFilters = {
  camera_id: "",
  label: "",
  status: "",
  severity: "",
  verdict: "",
  since: "",
  until: "",
};

type Query = Record<string, string | string[] | undefined>;

function one(q: Query, key: string): string {
  const v = q[key];
  return (Array.isArray(v) ? v[0] : v) ?? "";
}

function validIso(v: string): string {
  return v && !Number.isNaN(new Date(v).getTime()) ? v : "";
}

/** The filters a URL query holds (unknown values dropped). */
export function filtersFromQuery(q: Query): ReviewFilters {
  const pick = (key: string, allowed: readonly string[]) => {
    const v = one(q, key);
    return allowed.includes(v) ? v : "";
  };
  return {
    camera_id: one(q, "camera_id").slice(0, 64),
    label: one(q, "label").slice(0, 64),
    status: pick("status", STATUSES),
    severity: pick("severity", SEVERITIES),
    verdict: pick("verdict", VERDICTS),
    since: validIso(one(q, "since")),
    until: validIso(one(q, "until")),
  };
}

/** The URL query of filters and a selected alert (empty values left out). */
export function queryOf(f: ReviewFilters, alertId: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) if (v) out[k] = v;
  if (alertId) out.alert = alertId;
  return out;
}

/** The GET /alerts query (label and verdict are filtered here: the API has no such filter). */
export function alertsQuery(f: ReviewFilters, cursor: string | null, limit = 50) {
  return {
    camera_id: f.camera_id || undefined,
    status: f.status || undefined,
    severity: f.severity || undefined,
    since: f.since || undefined,
    until: f.until || undefined,
    cursor: cursor ?? undefined,
    limit,
  };
}

/** Whether an alert passes the filters (all of them: for live arrivals). */
export function matches(a: Pick<Alert, "camera_id" | "label" | "status" | "severity" | "verdict" | "created_at">, f: ReviewFilters): boolean {
  if (f.camera_id && a.camera_id !== f.camera_id) return false;
  if (f.label && a.label.toLowerCase() !== f.label.toLowerCase()) return false;
  if (f.status && a.status !== f.status) return false;
  if (f.severity && a.severity !== f.severity) return false;
  if (f.verdict === "none" ? a.verdict : f.verdict && a.verdict !== f.verdict) return false;
  const t = Date.parse(a.created_at);
  if (f.since && t < Date.parse(f.since)) return false;
  if (f.until && t > Date.parse(f.until)) return false;
  return true;
}

/** The filters the API cannot apply, applied to a page it returned. */
export function localFilter(items: Alert[], f: ReviewFilters): Alert[] {
  return items.filter((a) => matches(a, f));
}

// ---------------------------------------------------------------------------------------------
// Live messages

const LIVE_FIELDS = [
  "label",
  "status",
  "severity",
  "summary",
  "rule_explanation",
  "verdict",
  "created_at",
  "updated_at",
] as const;

/** The result of applying a live alert message to the loaded list. */
export interface Merge {
  items: Alert[];
  added: Alert | null;
  changed: boolean;
}

/**
 * Applies an `alert` live message: an alert already listed is updated in place (only a newer
 * `updated_at` wins); an unknown one that matches the filters is inserted in created_at order
 * (newest first), unless it is older than the last loaded one while more pages remain.
 */
export function mergeLive(
  items: Alert[],
  m: LiveMessage,
  f: ReviewFilters,
  complete: boolean,
): Merge {
  const id = typeof m.id === "string" ? m.id : null;
  if (m.type !== "alert" || !id) return { items, added: null, changed: false };
  const idx = items.findIndex((a) => a.id === id);
  const patch: Partial<Alert> = {};
  for (const k of LIVE_FIELDS) {
    const v = m[k];
    if (typeof v === "string" || v === null) (patch as Record<string, unknown>)[k] = v;
  }
  if (typeof m.acknowledged === "boolean" && idx >= 0) {
    const cur = items[idx]!;
    if (!m.acknowledged) patch.acknowledged_by = null;
    else if (!cur.acknowledged_by) patch.acknowledged_by = "someone";
  }
  if (idx >= 0) {
    const cur = items[idx]!;
    if (patch.updated_at && cur.updated_at && Date.parse(patch.updated_at) < Date.parse(cur.updated_at)) {
      return { items, added: null, changed: false };
    }
    const next = items.slice();
    next[idx] = { ...cur, ...stripEmpty(patch) };
    return { items: next, added: null, changed: true };
  }
  if (typeof m.camera_id !== "string" || typeof m.created_at !== "string" || typeof m.label !== "string") {
    return { items, added: null, changed: false };
  }
  const alert: Alert = {
    id,
    event_id: typeof m.event_id === "string" ? m.event_id : "",
    incident_id: typeof m.incident_id === "string" ? m.incident_id : null,
    camera_id: m.camera_id,
    label: m.label,
    created_at: m.created_at,
    updated_at: typeof m.updated_at === "string" ? m.updated_at : m.created_at,
    status: typeof m.status === "string" ? m.status : "open",
    alert: true,
    severity: typeof m.severity === "string" ? m.severity : "info",
    summary: typeof m.summary === "string" ? m.summary : "",
    reasons: [],
    recommended_action: "",
    decided_by: "",
    llm_status: "",
    acknowledged_by: m.acknowledged === true ? "someone" : null,
    acknowledged_at: null,
    verdict: typeof m.verdict === "string" ? m.verdict : null,
    verdict_note: null,
    rule_id: null,
    rule_version: null,
    rule_explanation: typeof m.rule_explanation === "string" ? m.rule_explanation : null,
  };
  if (!matches(alert, f)) return { items, added: null, changed: false };
  const t = Date.parse(alert.created_at);
  const last = items[items.length - 1];
  if (!complete && last && t < Date.parse(last.created_at)) return { items, added: null, changed: false };
  let at = items.findIndex((a) => Date.parse(a.created_at) < t);
  if (at < 0) at = items.length;
  const next = items.slice();
  next.splice(at, 0, alert);
  return { items: next, added: alert, changed: true };
}

function stripEmpty(p: Partial<Alert>): Partial<Alert> {
  const out: Partial<Alert> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v !== "" || k === "summary") (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Times

/** An ISO time as a `datetime-local` input value in the browser's zone (seconds kept). */
export function toLocalInput(iso: string): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A `datetime-local` value (browser's zone) as an ISO time in UTC ("" when empty or bad). */
export function fromLocalInput(value: string): string {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function shiftIso(iso: string, seconds: number): string {
  return new Date(Date.parse(iso) + seconds * 1000).toISOString();
}

/** "12:03:04" in the browser's zone. */
export function clock(iso: string | number): string {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

// ---------------------------------------------------------------------------------------------
// Timeline geometry

/** Contiguous recording: segments joined when the hole between them is at most `joinS`. */
export interface Run {
  start: number; // ms
  end: number;
  segments: Segment[];
}

export function runsOf(segments: Segment[], joinS = 1): Run[] {
  const sorted = segments
    .map((s) => ({ s, a: Date.parse(s.start_at), b: Date.parse(s.end_at) }))
    .filter((x) => x.b > x.a)
    .sort((x, y) => x.a - y.a);
  const runs: Run[] = [];
  for (const x of sorted) {
    const last = runs[runs.length - 1];
    if (last && x.a - last.end <= joinS * 1000) {
      last.end = Math.max(last.end, x.b);
      last.segments.push(x.s);
    } else runs.push({ start: x.a, end: x.b, segments: [x.s] });
  }
  return runs;
}

/** Nice axis ticks (ms) over [a, b], about `count` of them. */
export function ticks(a: number, b: number, count = 6): number[] {
  const span = Math.max(1, b - a);
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map(
    (s) => s * 1000,
  );
  const step = steps.find((s) => span / s <= count) ?? 86_400_000;
  const first = Math.ceil(a / step) * step;
  const out: number[] = [];
  for (let t = first; t <= b; t += step) out.push(t);
  return out;
}

/** The segment holding time `t` (ms) in a run, else the closest. */
export function segmentAt(run: Run, t: number): Segment {
  let best = run.segments[0]!;
  let bestD = Infinity;
  for (const s of run.segments) {
    const a = Date.parse(s.start_at);
    const b = Date.parse(s.end_at);
    const d = t < a ? a - t : t > b ? t - b : 0;
    if (d < bestD) {
      best = s;
      bestD = d;
    }
  }
  return best;
}

export const MAX_CLIP_S = 3600;

// ---------------------------------------------------------------------------------------------
// Keyboard

/** Whether a key event comes from somewhere typing happens (shortcuts stay off there). */
export function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  const tag = el.tagName.toLowerCase();
  return tag === "input" || tag === "textarea" || tag === "select" || el.isContentEditable || tag === "video";
}

// ---------------------------------------------------------------------------------------------
// Media and streams

/** Why a media URL does not play: the server's reason (a Range of one byte is asked). */
export async function mediaProblem(url: string): Promise<{ status: number; reason: string; retryS: number | null }> {
  try {
    const r = await fetch(url, { headers: { Range: "bytes=0-0" }, credentials: "same-origin" });
    if (r.status === 200 || r.status === 206) {
      await r.body?.cancel();
      return { status: r.status, reason: "the browser cannot play this video", retryS: null };
    }
    let body: unknown = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    const retry = Number(r.headers.get("Retry-After"));
    if (r.status === 202) {
      return { status: 202, reason: "the footage is archived and being restored", retryS: retry > 0 ? retry : 5 };
    }
    return { status: r.status, reason: reasonOf(r.status, body), retryS: null };
  } catch {
    return { status: 0, reason: reasonOf(0, null), retryS: null };
  }
}

/** Whether a failed answer means the search service is off. */
export function searchOff(status: number, error: string): boolean {
  return status === 503 || (status === 404 && /not enabled/i.test(error));
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Splits a server-sent-event buffer into complete events and the unfinished rest. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const text = buffer.replace(/\r\n?/g, "\n");
  const blocks = text.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ event, data: data.join("\n") });
  }
  return { events, rest };
}

export type AskEvent =
  | { event: "sources"; citations: Citation[] }
  | { event: "delta"; text: string }
  | { event: "done"; answer: AskAnswer }
  | { event: "error"; detail: string };

/**
 * POST /ask as server-sent events (EventSource cannot POST): calls `on` per event. Resolves
 * to null when the stream ended, or to the failure { status, error } of a refused request.
 */
export async function askStream(
  question: string,
  on: (e: AskEvent) => void,
  signal?: AbortSignal,
): Promise<{ status: number; error: string } | null> {
  let r: Response;
  try {
    r = await fetch(`${API}/ask?stream=true`, {
      method: "POST",
      headers: {
        Accept: "text/event-stream",
        "Content-Type": "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      credentials: "same-origin",
      body: JSON.stringify({ question }),
      signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    return { status: 0, error: reasonOf(0, null) };
  }
  if (!r.ok || !r.body) {
    let body: unknown = null;
    try {
      body = await r.json();
    } catch {
      body = null;
    }
    if (r.status === 401) toSignIn();
    return { status: r.status, error: reasonOf(r.status, body) };
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    const { events, rest } = parseSse(done ? buffer + "\n\n" : buffer);
    buffer = rest;
    for (const e of events) {
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(e.data) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (e.event === "sources") on({ event: "sources", citations: (data.citations as Citation[]) ?? [] });
      else if (e.event === "delta") on({ event: "delta", text: String(data.text ?? "") });
      else if (e.event === "done") on({ event: "done", answer: data as unknown as AskAnswer });
      else if (e.event === "error") on({ event: "error", detail: String(data.detail ?? "the answer failed") });
    }
    if (done) return null;
  }
}

/** Where a citation or search hit leads in the dashboard: the review page around its time. */
export function reviewHref(cameraId: string | null | undefined, startedAt: string | null | undefined): string {
  if (!cameraId) return "/review";
  const q = new URLSearchParams({ camera_id: cameraId });
  if (startedAt && !Number.isNaN(Date.parse(startedAt))) {
    q.set("since", shiftIso(startedAt, -600));
    q.set("until", shiftIso(startedAt, 600));
  }
  return `/review?${q.toString()}`;
}

export function clipUrl(kind: "event" | "incident", id: string): string {
  return `${API}/${kind === "event" ? "events" : "incidents"}/${encodeURIComponent(id)}/clip.mp4`;
}
