// One camera (/camera?id=…): its latest frame (tracked boxes drawn by the server) with its zones
// and lines over it, its state and counters, and its recent events with links to Review.
import { useRouter } from "next/router";
import { useCallback, useEffect, useState } from "react";
// Links are plain <a> (full page loads): a client-side route change makes Next inject the
// next page's CSS as an inline <style>, which the Content-Security-Policy blocks.
import Layout, { Notice } from "@/components/Layout";
import {
  cameraName,
  failureText,
  isLive,
  LiveBadge,
  LiveFrame,
  SceneShapes,
  withLiveStatus,
  type Camera,
  type Failure,
} from "@/components/LiveCommon";
import { api, can, query, when } from "@/lib/api";
import { useVisible } from "@/lib/hooks";
import { live } from "@/lib/live";
import { useMe } from "@/lib/session";
import s from "@/styles/live.module.css";

interface EventItem {
  id: string;
  camera_id: string;
  label: string;
  score: number;
  started_at: string;
  ended_at: string | null;
  zones: string[];
  snapshot_url: string | null;
}

interface SystemSeries {
  cameras: Record<string, { detector_latency_ms: (number | null)[]; fps_decoded: (number | null)[] }>;
}

const CAMERA_REFRESH_MS = 5_000;
const EVENTS_REFRESH_MS = 15_000;
const SYSTEM_REFRESH_MS = 30_000;

const COUNTERS: [string, string][] = [
  ["frames_decoded", "Frames decoded"],
  ["frames_sampled", "Frames analysed"],
  ["frames_dropped", "Frames dropped"],
  ["frames_skipped_motion", "Skipped (no motion)"],
  ["decode_errors", "Decode errors"],
  ["detector_calls", "Detector calls"],
  ["detector_errors", "Detector errors"],
  ["events_opened", "Events opened"],
  ["reconnects", "Reconnects"],
];

function lastValue(xs: (number | null)[] | undefined): number | null {
  for (let i = (xs?.length ?? 0) - 1; i >= 0; i--) {
    const v = xs?.[i];
    if (typeof v === "number") return v;
  }
  return null;
}

export default function CameraPage() {
  const router = useRouter();
  const me = useMe();
  const visible = useVisible();
  const id = router.isReady && typeof router.query.id === "string" ? router.query.id : null;
  const allowed = can(me, "cameras:read");
  const [camera, setCamera] = useState<Camera | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [events, setEvents] = useState<EventItem[] | null>(null);
  const [eventsFailure, setEventsFailure] = useState<Failure | null>(null);
  const [latency, setLatency] = useState<number | null | undefined>(undefined);
  const [showScene, setShowScene] = useState(true);

  const loadCamera = useCallback(async () => {
    if (!id) return;
    const r = await api<Camera>("GET", `/cameras/${encodeURIComponent(id)}`);
    if (r.ok) {
      setCamera(r.data);
      setFailure(null);
    } else setFailure({ status: r.status, error: r.error });
  }, [id]);

  const loadEvents = useCallback(async () => {
    if (!id || !can(me, "events:read")) return;
    const r = await api<{ items: EventItem[] }>("GET", `/events${query({ camera_id: id, limit: 12 })}`);
    if (r.ok) {
      setEvents(r.data.items);
      setEventsFailure(null);
    } else setEventsFailure({ status: r.status, error: r.error });
  }, [id, me]);

  const loadLatency = useCallback(async () => {
    if (!id || !can(me, "metrics:read")) return;
    const r = await api<SystemSeries>("GET", "/dashboard/system");
    setLatency(r.ok ? lastValue(r.data.cameras[id]?.detector_latency_ms) : null);
  }, [id, me]);

  useEffect(() => {
    setCamera(null);
    setFailure(null);
    setEvents(null);
    setLatency(undefined);
  }, [id]);

  useEffect(() => {
    if (!allowed || !id || !visible) return;
    void loadCamera();
    const t = setInterval(() => void loadCamera(), CAMERA_REFRESH_MS);
    return () => clearInterval(t);
  }, [allowed, id, visible, loadCamera]);

  useEffect(() => {
    if (!allowed || !id || !visible) return;
    void loadEvents();
    const t = setInterval(() => void loadEvents(), EVENTS_REFRESH_MS);
    return () => clearInterval(t);
  }, [allowed, id, visible, loadEvents]);

  useEffect(() => {
    if (!allowed || !id || !visible) return;
    void loadLatency();
    const t = setInterval(() => void loadLatency(), SYSTEM_REFRESH_MS);
    return () => clearInterval(t);
  }, [allowed, id, visible, loadLatency]);

  useEffect(() => {
    if (!allowed || !id) return;
    return live().subscribe((m) => {
      if (m.type === "reset") {
        void loadCamera();
        void loadEvents();
      } else if (m.camera_id === id && m.type === "camera") {
        setCamera((c) => (c ? withLiveStatus(c, m) : c));
      } else if (m.camera_id === id && (m.type === "incident" || m.type === "alert")) {
        void loadEvents();
      }
    });
  }, [allowed, id, loadCamera, loadEvents]);

  const title = camera ? cameraName(camera) : "Camera";

  if (!allowed) {
    return (
      <Layout title="Camera">
        <Notice>You may not see cameras: this needs the cameras:read permission.</Notice>
      </Layout>
    );
  }
  if (router.isReady && !id) {
    return (
      <Layout title="Camera">
        <Notice>
          No camera chosen. Pick one on the <a href="/">Live</a> page.
        </Notice>
      </Layout>
    );
  }
  if (failure && !camera) {
    return (
      <Layout title="Camera">
        <Notice kind="error">{failureText(failure, `camera ${id ?? ""}`, "cameras:read")}</Notice>
        <p>
          <a href="/">Back to Live</a>
        </p>
      </Layout>
    );
  }
  if (!camera || !id) {
    return (
      <Layout title="Camera">
        <p role="status">Loading camera…</p>
      </Layout>
    );
  }

  const st = camera.status;
  const review = `/review${query({ camera_id: id })}`;
  const hasScene = camera.zones.length + camera.lines.length > 0;

  return (
    <Layout title={title}>
      <p className="muted">
        <a href="/">Live</a> › {camera.id}
      </p>
      {failure ? <Notice kind="error">The camera&apos;s status could not be refreshed: {failure.error}.</Notice> : null}
      <div className={s.cameraLayout}>
        <section aria-labelledby="frame-h">
          <h2 id="frame-h" className={s.srOnly}>
            Latest frame
          </h2>
          <LiveFrame
            cameraId={id}
            large
            refresh={isLive(camera.status.state)}
            alt={`Latest analysed frame of ${title}, with the tracked objects' boxes`}
            overlay={
              showScene && hasScene
                ? (size) => <SceneShapes zones={camera.zones} lines={camera.lines} size={size} />
                : undefined
            }
          />
          <div className={s.toolbar}>
            {hasScene ? (
              <label className={s.check}>
                <input type="checkbox" checked={showScene} onChange={(e) => setShowScene(e.target.checked)} />
                Show zones and lines
              </label>
            ) : (
              <span className="muted">No zones or lines on this camera.</span>
            )}
            <a href={`/zones${query({ id })}`}>{can(me, "cameras:write") ? "Edit zones" : "View zones"}</a>
            {can(me, "alerts:read") ? <a href={review}>Review this camera&apos;s alerts</a> : null}
          </div>
          <p className="muted">
            The tracked objects&apos; boxes and captions (label, track number, score) are drawn on the frame by the
            server. The frame refreshes about twice a second while this tab is visible.
          </p>
        </section>
        <div className={s.side}>
          <section className="panel" aria-labelledby="status-h">
            <h2 id="status-h">Status</h2>
            <div role="status" aria-live="polite">
              <LiveBadge camera={camera} />
            </div>
            <dl className={s.facts}>
              <dt>Source</dt>
              <dd>{camera.source}</dd>
              <dt>Stream</dt>
              <dd>
                {st.width && st.height ? `${st.width}×${st.height}` : "—"}
                {st.codec ? ` ${st.codec}` : ""}
                {st.fps ? ` at ${st.fps.toFixed(1)} fps` : ""}
              </dd>
              <dt>Analysed</dt>
              <dd>{camera.detect ? `${camera.detect_fps} fps` : "detector off"}</dd>
              <dt>Detector latency</dt>
              <dd>
                {latency === undefined
                  ? can(me, "metrics:read")
                    ? "…"
                    : "needs metrics:read"
                  : latency === null
                    ? "—"
                    : `${latency.toFixed(0)} ms (mean, last interval)`}
              </dd>
              {COUNTERS.map(([key, label]) => (
                <FactRow key={key} label={label} value={st.counters[key]} />
              ))}
            </dl>
          </section>
          <section className="panel" aria-labelledby="events-h">
            <h2 id="events-h">Recent events</h2>
            {!can(me, "events:read") ? (
              <p className="muted">Seeing events needs the events:read permission.</p>
            ) : eventsFailure ? (
              <Notice kind="error">{failureText(eventsFailure, "the events", "events:read")}</Notice>
            ) : events === null ? (
              <p role="status">Loading events…</p>
            ) : events.length === 0 ? (
              <p className="muted">No events on this camera yet.</p>
            ) : (
              <ul className={s.events}>
                {events.map((e) => (
                  <li key={e.id} className={s.event}>
                    {e.snapshot_url ? (
                      <img
                        className={s.thumb}
                        src={e.snapshot_url}
                        alt={`${e.label} at ${when(e.started_at)}`}
                        loading="lazy"
                        width={96}
                        height={54}
                      />
                    ) : (
                      <span className={s.noThumb}>no snapshot</span>
                    )}
                    <span className={s.eventText}>
                      <strong>{e.label}</strong>
                      <span>
                        {when(e.started_at)}
                        {e.ended_at ? "" : " · ongoing"}
                      </span>
                      <span className="muted">
                        score {e.score.toFixed(2)}
                        {e.zones.length ? ` · ${e.zones.join(", ")}` : ""}
                      </span>
                    </span>
                  </li>
                ))}
              </ul>
            )}
            {can(me, "alerts:read") ? (
              <p>
                <a href={review}>Open Review filtered on {title}</a>
              </p>
            ) : null}
          </section>
        </div>
      </div>
    </Layout>
  );
}

function FactRow({ label, value }: { label: string; value: number | undefined }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{typeof value === "number" ? value.toLocaleString() : "—"}</dd>
    </>
  );
}
