// One alert: snapshot, the agent's summary, the rule explanation, its clip played in the page,
// acknowledge and verdict (with shortcuts), the camera's recording timeline and export.
import { useEffect, useRef, useState } from "react";
import { api, can, query, when, type Me } from "@/lib/api";
import { clipUrl, isTyping, mediaProblem, shiftIso, type Alert } from "@/lib/review";
import ReviewExport from "./ReviewExport";
import ReviewTimeline, { type PlayRange } from "./ReviewTimeline";
import styles from "@/styles/review.module.css";

interface EventInfo {
  id: string;
  started_at: string;
  ended_at: string | null;
  last_seen_at: string;
  best_at: string;
  score: number;
  zones: string[];
}

type Source = { kind: "event" | "incident" | "range"; url: string; label: string; range: PlayRange | null };

const SEVERITY_BADGE: Record<string, string> = {
  critical: "badge-bad",
  high: "badge-bad",
  medium: "badge-warn",
  low: "",
  info: "",
};

function eventSource(a: Alert): Source {
  return { kind: "event", url: clipUrl("event", a.event_id), label: "the event's clip (5 s before to 5 s after)", range: null };
}

export default function ReviewDetail({
  alert,
  me,
  onChange,
  announce,
}: {
  alert: Alert;
  me: Me | null;
  onChange: (a: Alert) => void;
  announce: (text: string) => void;
}) {
  const canWrite = can(me, "alerts:write");
  const canEvents = can(me, "events:read");
  const writeReason = "You cannot act on alerts: your role lacks the alerts:write permission.";
  const [source, setSource] = useState<Source>(() => eventSource(alert));
  const [clipError, setClipError] = useState<string | null>(null);
  const [retryS, setRetryS] = useState<number | null>(null);
  const [snapOk, setSnapOk] = useState(true);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState("");
  const video = useRef<HTMLVideoElement>(null);
  const [exportRange, setExportRange] = useState<PlayRange>(() => ({
    start: shiftIso(alert.created_at, -30),
    end: shiftIso(alert.created_at, 30),
  }));
  // The event's own time (the alert is written when it was decided, a little later).
  const [event, setEvent] = useState<EventInfo | null>(null);
  const [eventFor, setEventFor] = useState<string | null>(null);
  useEffect(() => {
    setEvent(null);
    setEventFor(null);
    if (!canEvents || !alert.event_id) return;
    const ctl = new AbortController();
    api<EventInfo>("GET", `/events/${encodeURIComponent(alert.event_id)}`, undefined, { signal: ctl.signal })
      .then((r) => {
        setEventFor(alert.event_id);
        if (!r.ok || r.data.id !== alert.event_id) return;
        setEvent(r.data);
        const end = r.data.ended_at ?? r.data.last_seen_at;
        setExportRange({ start: shiftIso(r.data.started_at, -5), end: shiftIso(end, Date.parse(end) > Date.parse(r.data.started_at) ? 5 : 10) });
      })
      .catch(() => undefined);
    return () => ctl.abort();
  }, [alert.event_id, canEvents]);
  const at = event?.best_at ?? event?.started_at ?? alert.created_at;

  useEffect(() => {
    setSource(eventSource(alert));
    setClipError(null);
    setRetryS(null);
    setSnapOk(true);
    setError(null);
    setNote("");
    setExportRange({ start: shiftIso(alert.created_at, -30), end: shiftIso(alert.created_at, 30) });
    // Only a different alert resets the view (live updates of the same one keep it).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [alert.id]);

  const onVideoError = async () => {
    const p = await mediaProblem(source.url);
    if (p.status === 404 && /not enabled/i.test(p.reason)) setClipError("Recording is not enabled on this server, so there is no clip.");
    else if (p.status === 404 && /no footage/i.test(p.reason)) setClipError("No footage was recorded at that time, so there is no clip.");
    else if (p.status === 202) setClipError(`The footage is archived and being restored; try again in about ${p.retryS} s.`);
    else setClipError(`The clip cannot be played: ${p.reason}.`);
    setRetryS(p.status === 202 ? p.retryS : null);
  };

  const play = (s: Source) => {
    setClipError(null);
    setRetryS(null);
    setSource(s);
  };

  const retry = () => {
    setClipError(null);
    setRetryS(null);
    video.current?.load();
  };

  const ack = async () => {
    if (!canWrite || alert.status !== "open" || busy) return;
    setBusy("ack");
    setError(null);
    const r = await api<Alert>("POST", `/alerts/${encodeURIComponent(alert.id)}/ack`);
    setBusy(null);
    if (r.ok) {
      onChange(r.data);
      announce(`Alert ${alert.label} on ${alert.camera_id} acknowledged.`);
    } else setError(`Acknowledging failed: ${r.error}.`);
  };

  const verdict = async (v: "true_positive" | "false_positive") => {
    if (!canWrite || busy) return;
    setBusy(v);
    setError(null);
    const r = await api<Alert>("POST", `/alerts/${encodeURIComponent(alert.id)}/feedback`, { verdict: v, note: note.slice(0, 2000) });
    setBusy(null);
    if (r.ok) {
      onChange(r.data);
      announce(`Marked as ${v === "true_positive" ? "true positive" : "false positive"}.`);
    } else setError(`The verdict was not saved: ${r.error}.`);
  };

  const openClip = () => {
    const v = video.current;
    if (!v) return;
    v.scrollIntoView({ block: "nearest" });
    v.focus();
    v.play().catch(() => undefined);
  };

  // Shortcuts for this alert (the list's j/k live in the page).
  const actions = useRef({ ack, verdict, openClip });
  actions.current = { ack, verdict, openClip };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || isTyping(e.target)) return;
      const k = e.key.toLowerCase();
      if (k === "a") actions.current.ack();
      else if (k === "t") actions.current.verdict("true_positive");
      else if (k === "f") actions.current.verdict("false_positive");
      else if (k === "o") actions.current.openClip();
      else return;
      e.preventDefault();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  const acked = alert.status !== "open";
  const ackReason = !canWrite ? "" : alert.status === "withdrawn" ? "Withdrawn: the agent disagreed, nothing to acknowledge." : acked ? `Acknowledged${alert.acknowledged_by ? ` by ${alert.acknowledged_by}` : ""}${alert.acknowledged_at ? ` at ${when(alert.acknowledged_at)}` : ""}.` : "";

  const timelinePlay = (r: PlayRange) => {
    setExportRange(r);
    play({
      kind: "range",
      url: `/api/v1/cameras/${encodeURIComponent(alert.camera_id)}/clip.mp4${query({ start: r.start, end: r.end })}`,
      label: `the recording ${when(r.start)} – ${when(r.end)}`,
      range: r,
    });
    announce(`Playing the recording from ${when(r.start)}.`);
    setTimeout(() => video.current?.play().catch(() => undefined), 0);
  };

  return (
    <article className={`panel ${styles.detail}`} aria-labelledby="detail-h" data-testid="alert-detail" data-alert-id={alert.id}>
      <h2 id="detail-h" tabIndex={-1}>
        {alert.label} on {alert.camera_id}
      </h2>
      <p className={styles.meta}>
        <span className={`badge ${SEVERITY_BADGE[alert.severity] ?? ""}`}>{alert.severity}</span>{" "}
        <span className="badge">{alert.status}</span>{" "}
        {alert.verdict ? (
          <span className={`badge ${alert.verdict === "true_positive" ? "badge-ok" : "badge-warn"}`} data-testid="verdict">
            {alert.verdict === "true_positive" ? "true positive" : "false positive"}
          </span>
        ) : null}{" "}
        <span>
          Camera <strong>{alert.camera_id}</strong>, <time dateTime={at}>{when(at)}</time>
          {event?.zones.length ? <> in {event.zones.join(", ")}</> : null}
          {event ? <span className="muted"> (score {event.score.toFixed(2)})</span> : null}
        </span>
      </p>

      <div className={styles.media}>
        <figure className={styles.snapshot}>
          {canEvents && alert.event_id && snapOk ? (
            <img
              src={`/api/v1/events/${encodeURIComponent(alert.event_id)}/snapshot.jpg`}
              alt={`Snapshot of the ${alert.label} on ${alert.camera_id} at ${when(at)}`}
              onError={() => setSnapOk(false)}
              data-testid="snapshot"
            />
          ) : (
            <p className={`muted ${styles.noMedia}`}>{canEvents ? "No snapshot for this event." : "Snapshots need the events:read permission."}</p>
          )}
          <figcaption className="muted">Snapshot</figcaption>
        </figure>
        <figure className={styles.clip}>
          {!canEvents ? (
            <p className={`muted ${styles.noMedia}`}>Clips need the events:read permission.</p>
          ) : clipError ? (
            <div className={styles.noMedia} role="status" data-testid="clip-missing">
              <p>{clipError}</p>
              {retryS !== null ? (
                <button type="button" className="secondary" onClick={retry}>
                  Try again
                </button>
              ) : null}
            </div>
          ) : (
            <video
              key={source.url}
              ref={video}
              controls
              preload="metadata"
              playsInline
              src={source.url}
              onError={onVideoError}
              data-testid="clip"
              aria-label={`Clip: ${source.label}`}
              poster={canEvents && snapOk ? `/api/v1/events/${encodeURIComponent(alert.event_id)}/snapshot.jpg` : undefined}
            />
          )}
          <figcaption className="muted">
            Playing {source.label}.{" "}
            {source.kind !== "event" ? (
              <button type="button" className="link" onClick={() => play(eventSource(alert))}>
                Back to the event&apos;s clip
              </button>
            ) : null}
            {alert.incident_id && source.kind !== "incident" ? (
              <>
                {" "}
                <button
                  type="button"
                  className="link"
                  onClick={() =>
                    play({ kind: "incident", url: clipUrl("incident", alert.incident_id!), label: `the whole incident ${alert.incident_id}`, range: null })
                  }
                >
                  Play the whole incident
                </button>
              </>
            ) : null}
          </figcaption>
        </figure>
      </div>

      <h3>What the agent says</h3>
      <p data-testid="summary">{alert.summary || <span className="muted">No summary yet ({alert.llm_status || "pending"}).</span>}</p>
      {alert.reasons.length ? (
        <ul className={styles.reasons}>
          {alert.reasons.map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      ) : null}
      {alert.recommended_action ? (
        <p>
          <strong>Recommended:</strong> {alert.recommended_action}
        </p>
      ) : null}
      <h3>Why it alerted</h3>
      <p data-testid="rule-explanation">{alert.rule_explanation || <span className="muted">No operator rule matched (decided by {alert.decided_by || "the defaults"}).</span>}</p>

      <h3>Your decision</h3>
      <div className="row">
        <button type="button" onClick={ack} disabled={!canWrite || acked || busy !== null} aria-describedby={!canWrite ? "write-reason" : ackReason ? "ack-reason" : undefined} aria-keyshortcuts="A" data-testid="ack">
          {busy === "ack" ? "Acknowledging…" : acked && alert.status === "acknowledged" ? "Acknowledged" : "Acknowledge"}
        </button>
        <button
          type="button"
          className="secondary"
          aria-pressed={alert.verdict === "true_positive"}
          onClick={() => verdict("true_positive")}
          disabled={!canWrite || busy !== null}
          aria-describedby={!canWrite ? "write-reason" : undefined}
          aria-keyshortcuts="T"
          data-testid="verdict-true"
        >
          True positive
        </button>
        <button
          type="button"
          className="secondary"
          aria-pressed={alert.verdict === "false_positive"}
          onClick={() => verdict("false_positive")}
          disabled={!canWrite || busy !== null}
          aria-describedby={!canWrite ? "write-reason" : undefined}
          aria-keyshortcuts="F"
          data-testid="verdict-false"
        >
          False positive
        </button>
        {canWrite ? (
          <label className={styles.note}>
            Note with the verdict (optional)
            <input value={note} maxLength={2000} onChange={(e) => setNote(e.target.value)} />
          </label>
        ) : null}
      </div>
      {ackReason ? (
        <p id="ack-reason" className="muted">
          {ackReason}
        </p>
      ) : null}
      {!canWrite ? (
        <p id="write-reason" className="muted">
          {writeReason}
        </p>
      ) : null}
      {error ? <p className="notice notice-error" role="alert">{error}</p> : null}

      {canEvents ? (
        <>
          {eventFor === alert.event_id ? (
            <ReviewTimeline cameraId={alert.camera_id} at={at} range={source.range ?? exportRange} onPlay={timelinePlay} />
          ) : (
            <p className="muted">Loading the recordings…</p>
          )}
          <ReviewExport
            cameraId={alert.camera_id}
            start={exportRange.start}
            end={exportRange.end}
            allowed={canWrite}
            reason="Exporting needs the alerts:write permission (operators)."
          />
        </>
      ) : (
        <p className="muted">The recordings timeline needs the events:read permission.</p>
      )}
    </article>
  );
}
