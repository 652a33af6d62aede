// Shared pieces of the Live pages (/, /camera, /zones): the camera types of GET
// /api/v1/cameras, the camera list kept current (REST refresh + live "camera" messages), the
// state badge, and the refreshing latest frame.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { API, api } from "@/lib/api";
import { useVisible } from "@/lib/hooks";
import { live, type LiveMessage } from "@/lib/live";
import s from "@/styles/live.module.css";

export type Point = [number, number];

export interface Zone {
  name: string;
  polygon: Point[];
  inertia: number;
  labels: string[] | null;
}

export interface SceneLine {
  name: string;
  a: Point;
  b: Point;
  direction: "both" | "in" | "out";
}

export interface CameraStatus {
  state: string;
  last_error: string | null;
  restarts: number;
  codec: string | null;
  width: number | null;
  height: number | null;
  fps: number | null;
  counters: Record<string, number>;
  recording: Record<string, unknown> | null;
}

export interface Camera {
  id: string;
  name: string | null;
  source: string;
  detect_fps: number;
  realtime: boolean;
  enabled: boolean;
  detect: boolean;
  labels: string[] | null;
  zones: Zone[];
  lines: SceneLine[];
  motion_masks: { polygon: Point[] }[];
  object_masks: { polygon: Point[]; labels: string[] | null }[];
  status: CameraStatus;
}

export interface Failure {
  status: number;
  error: string;
}

export function cameraName(c: Pick<Camera, "id" | "name">): string {
  return c.name ? c.name : c.id;
}

/** A sentence for people saying why a call failed, naming what is missing. */
export function failureText(f: Failure, what: string, scope: string): string {
  if (f.status === 403) return `You may not see ${what} (this needs the ${scope} permission).`;
  if (f.status === 404) return `${what[0]?.toUpperCase()}${what.slice(1)}: not found on this server (or not yours to see).`;
  if (f.status === 503) return `${what[0]?.toUpperCase()}${what.slice(1)} is not available right now (the service is not running).`;
  return `${what[0]?.toUpperCase()}${what.slice(1)} could not be loaded: ${f.error}.`;
}

/** Applies a live "camera" message to a camera (state, reason, restarts). */
export function withLiveStatus(c: Camera, m: LiveMessage): Camera {
  return {
    ...c,
    status: {
      ...c.status,
      state: typeof m.state === "string" ? m.state : c.status.state,
      last_error: typeof m.last_error === "string" ? m.last_error : null,
      restarts: typeof m.restarts === "number" ? m.restarts : c.status.restarts,
    },
  };
}

const STATUS_REFRESH_MS = 10_000;

/** States in which a camera sends (or is about to send) frames. */
export function isLive(state: string): boolean {
  return state === "running" || state === "starting" || state === "reconnecting";
}

/** The cameras this user may see, refreshed every 10 s while the tab is visible and patched
 * at once by live "camera" messages. `announce` is the latest state change, for a live region. */
export function useCameras(enabled: boolean) {
  const visible = useVisible();
  const [cameras, setCameras] = useState<Camera[] | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [announce, setAnnounce] = useState("");
  const current = useRef<Camera[] | null>(null);
  current.current = cameras;

  const load = useCallback(async () => {
    const r = await api<Camera[]>("GET", "/cameras");
    if (r.ok) {
      setCameras(r.data);
      setFailure(null);
    } else {
      setFailure({ status: r.status, error: r.error });
    }
  }, []);

  useEffect(() => {
    if (!enabled || !visible) return;
    void load();
    const id = setInterval(() => void load(), STATUS_REFRESH_MS);
    return () => clearInterval(id);
  }, [enabled, visible, load]);

  useEffect(() => {
    if (!enabled) return;
    return live().subscribe((m) => {
      if (m.type === "reset") {
        void load();
        return;
      }
      if (m.type !== "camera" || !m.camera_id) return;
      if (m.state === "removed") {
        setCameras((cs) => (cs ? cs.filter((c) => c.id !== m.camera_id) : cs));
        setAnnounce(`Camera ${m.camera_id} was removed.`);
        return;
      }
      if (current.current && !current.current.some((c) => c.id === m.camera_id)) {
        void load(); // a camera added meanwhile
      }
      setCameras((cs) => (cs ? cs.map((c) => (c.id === m.camera_id ? withLiveStatus(c, m) : c)) : cs));
      const reason = typeof m.last_error === "string" && m.last_error ? `: ${m.last_error}` : "";
      setAnnounce(`Camera ${m.camera_id} is ${String(m.state)}${reason}.`);
    });
  }, [enabled, load]);

  return { cameras, failure, announce, reload: load };
}

const STATE_CLASS: Record<string, string> = {
  running: "badge-ok",
  starting: "badge-warn",
  reconnecting: "badge-warn",
  unschedulable: "badge-warn",
  failed: "badge-bad",
  removed: "badge-bad",
};

/** The camera's state as a badge (text, not only colour) and its failure reason. */
export function LiveBadge({ camera }: { camera: Camera }) {
  const st = camera.status;
  const cls = STATE_CLASS[st.state] ?? "";
  return (
    <div className={s.state}>
      <span className={`badge ${cls}`}>{st.state}</span>
      {!camera.enabled ? <span className="badge">disabled</span> : null}
      {st.restarts > 0 ? <span className="muted">{st.restarts} restart{st.restarts === 1 ? "" : "s"}</span> : null}
      {st.last_error ? (
        <p className={s.reason}>
          <span className={s.reasonLabel}>Reason:</span> {st.last_error}
        </p>
      ) : null}
    </div>
  );
}

export interface FrameSize {
  w: number;
  h: number;
}

export const DEFAULT_SIZE: FrameSize = { w: 1600, h: 900 };
const RETRY_MS = 2_000;

/** A camera's latest analysed frame (GET …/latest.jpg, tracked boxes drawn by the server),
 * refreshed every `periodMs` while the tab is visible and not at all while it is hidden. The
 * next image is asked for only after the previous one loaded (or failed), so a slow link never
 * piles up requests. `overlay` draws over the frame, in the frame's pixel units (an SVG viewBox
 * of its natural size). */
export function LiveFrame({
  cameraId,
  alt,
  periodMs = 350,
  large = false,
  overlay,
  onSize,
  refresh = true,
}: {
  cameraId: string;
  /** false (a failed or stopped camera): one try for its last frame, then no more requests. */
  refresh?: boolean;
  alt: string;
  periodMs?: number;
  large?: boolean;
  overlay?: (size: FrameSize) => ReactNode;
  onSize?: (size: FrameSize) => void;
}) {
  const visible = useVisible();
  const visibleRef = useRef(visible);
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;
  const [stamp, setStamp] = useState<number | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [failed, setFailed] = useState(false);
  const [size, setSize] = useState<FrameSize>(DEFAULT_SIZE);
  const inFlight = useRef(false);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const askedAt = useRef(0);

  const next = useCallback(() => {
    timer.current = null;
    if (!visibleRef.current || inFlight.current) return;
    inFlight.current = true;
    askedAt.current = performance.now();
    setStamp(Date.now());
  }, []);

  const schedule = useCallback(
    (ms: number) => {
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(next, Math.max(0, ms));
    },
    [next],
  );

  useEffect(() => {
    visibleRef.current = visible;
    if (!visible) {
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    } else if (!inFlight.current && !timer.current) {
      next();
    }
  }, [visible, next]);

  useEffect(() => {
    // Another camera: start over.
    setLoaded(false);
    setFailed(false);
    inFlight.current = false;
    if (visibleRef.current) next();
    return () => {
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [cameraId, next]);

  useEffect(() => {
    // The camera came back: refresh again.
    if (refresh && visibleRef.current && !inFlight.current && !timer.current) next();
  }, [refresh, next]);

  const src = stamp === null ? undefined : `${API}/cameras/${encodeURIComponent(cameraId)}/latest.jpg?t=${stamp}`;

  return (
    <div className={`${s.frame} ${large ? s.frameLarge : ""}`}>
      {src ? (
        <img
          src={src}
          alt={alt}
          className={failed && !loaded ? s.hidden : s.image}
          width={size.w}
          height={size.h}
          onLoad={(e) => {
            inFlight.current = false;
            const img = e.currentTarget;
            if (img.naturalWidth && (img.naturalWidth !== size.w || img.naturalHeight !== size.h)) {
              setSize({ w: img.naturalWidth, h: img.naturalHeight });
              onSize?.({ w: img.naturalWidth, h: img.naturalHeight });
            }
            setLoaded(true);
            setFailed(false);
            if (refreshRef.current) schedule(periodMs - (performance.now() - askedAt.current));
          }}
          onError={() => {
            inFlight.current = false;
            setFailed(true);
            setLoaded(false);
            if (refreshRef.current) schedule(RETRY_MS);
          }}
        />
      ) : null}
      {!loaded ? (
        <div className={s.placeholder}>
          <span>
            {failed
              ? refresh
                ? "No frame yet (the camera has not sent one, or cannot be reached)."
                : "No frame: the camera is not running."
              : "Loading frame…"}
          </span>
        </div>
      ) : null}
      {overlay ? (
        <svg
          className={s.overlay}
          viewBox={`0 0 ${size.w} ${size.h}`}
          preserveAspectRatio="none"
          aria-hidden="true"
          focusable="false"
        >
          {overlay(size)}
        </svg>
      ) : null}
    </div>
  );
}

/** The points of a normalised polygon in frame pixels, for an SVG `points` attribute. */
export function svgPoints(polygon: Point[], size: FrameSize): string {
  return polygon.map(([x, y]) => `${(x * size.w).toFixed(1)},${(y * size.h).toFixed(1)}`).join(" ");
}

/** Zones and lines drawn read-only, in frame pixels. */
export function SceneShapes({ zones, lines, size }: { zones: Zone[]; lines: SceneLine[]; size: FrameSize }) {
  const font = Math.max(12, Math.round(size.h / 30));
  return (
    <>
      {zones.map((z) => (
        <g key={`z-${z.name}`}>
          <polygon className={s.zone} points={svgPoints(z.polygon, size)} />
          {z.polygon[0] ? (
            <text className={s.zoneName} x={z.polygon[0][0] * size.w + 4} y={z.polygon[0][1] * size.h + font} fontSize={font}>
              {z.name}
            </text>
          ) : null}
        </g>
      ))}
      {lines.map((l) => (
        <g key={`l-${l.name}`}>
          <line className={s.sceneLine} x1={l.a[0] * size.w} y1={l.a[1] * size.h} x2={l.b[0] * size.w} y2={l.b[1] * size.h} />
          <text className={s.zoneName} x={l.a[0] * size.w + 4} y={l.a[1] * size.h - 4} fontSize={font}>
            {l.name}
          </text>
        </g>
      ))}
    </>
  );
}
