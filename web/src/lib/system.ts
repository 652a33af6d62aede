// The System page's data: its API shapes and GET /health (served at the root, outside /api/v1,
// so api() cannot reach it; it is a public GET: no CSRF token is involved).
import { reasonOf, type ApiResult } from "./api";

export interface Health {
  status: string;
  ready: boolean;
  database: string;
  detector: string;
  cameras: Record<string, string>;
  search_backlog: number | null;
}

export interface CameraSeries {
  state: (string | null)[];
  fps_decoded: (number | null)[];
  fps_dropped: (number | null)[];
  detector_calls_per_s: (number | null)[];
  detector_latency_ms: (number | null)[];
  batch_size: (number | null)[];
}

export interface SystemHistory {
  interval_s: number;
  times: string[];
  cameras: Record<string, CameraSeries>;
  agent: { backlog: (number | null)[]; decisions_per_min: (number | null)[]; latency_ms: (number | null)[] } | null;
}

export interface EventHistory {
  start: string;
  end: string;
  hours: string[];
  total: number[];
  by_camera: Record<string, number[]>;
  by_label: Record<string, number[]>;
  by_camera_label: { camera_id: string; label: string; count: number }[];
}

export interface AlertHistory {
  start: string;
  end: string;
  hours: string[];
  alerts: number[];
  true_positive: number[];
  false_positive: number[];
  acknowledged: number[];
  totals: Record<string, number>;
  alerts_per_hour: number;
  false_positive_rate: number | null;
}

export interface CameraStorage {
  camera_id: string;
  bytes: number;
  segments: number;
  exported_bytes: number;
  archived_bytes: number;
  archived_segments: number;
  restored_bytes: number;
  oldest_at: string | null;
  newest_at: string | null;
}

export interface StorageReport {
  cameras: CameraStorage[];
  total_bytes: number;
  total_segments: number;
  archived_bytes: number;
  archived_segments: number;
  archive: Record<string, unknown> | null;
  budget_bytes: number | null;
  min_free_bytes: number | null;
  disk: { total_bytes: number; free_bytes: number } | null;
  last_sweep: Record<string, unknown> | null;
}

/** GET /health with the session cookie (camera states are listed only to camera readers). */
export async function getHealth(signal?: AbortSignal): Promise<ApiResult<Health>> {
  let response: Response;
  try {
    response = await fetch("/health", { headers: { Accept: "application/json" }, credentials: "same-origin", signal });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    return { ok: false, status: 0, error: reasonOf(0, null) };
  }
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) return { ok: false, status: response.status, error: reasonOf(response.status, data) };
  return { ok: true, status: response.status, data: data as Health };
}

/** Bytes for people (binary units). */
export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** A short number for labels: 3 significant figures at most. */
export function short(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (n === 0) return "0";
  const a = Math.abs(n);
  if (a >= 1e6) return `${+(n / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toPrecision(3)}k`;
  return String(+n.toPrecision(3));
}

/** HH:MM of an ISO time in the browser's zone. */
export function clock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}
