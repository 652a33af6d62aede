// A camera's recordings around a time as an SVG bar: recorded runs, visible gaps, a time axis,
// the alert's moment and the export range. Clicking (or Enter on) a run plays it.
import { useEffect, useState, type MouseEvent } from "react";
import { api, query } from "@/lib/api";
import { clock, duration, MAX_CLIP_S, runsOf, segmentAt, shiftIso, ticks, type Run, type Timeline } from "@/lib/review";
import styles from "@/styles/review.module.css";

const W = 1000;
const BAR_Y = 8;
const BAR_H = 28;
const AXIS_Y = BAR_Y + BAR_H;

const WINDOWS = [
  { label: "±1 min", s: 60 },
  { label: "±10 min", s: 600 },
  { label: "±1 h", s: 3600 },
  { label: "±6 h", s: 21600 },
];

export interface PlayRange {
  start: string;
  end: string;
}

export default function ReviewTimeline({
  cameraId,
  at,
  range,
  onPlay,
}: {
  cameraId: string;
  at: string;
  range: PlayRange | null;
  onPlay: (r: PlayRange) => void;
}) {
  const [half, setHalf] = useState(600);
  const [tl, setTl] = useState<Timeline | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const ctl = new AbortController();
    setTl(null);
    setError(null);
    const since = shiftIso(at, -half);
    const untilMs = Math.min(Date.parse(at) + half * 1000, Date.now());
    const until = new Date(Math.max(untilMs, Date.parse(since) + 1000)).toISOString();
    api<Timeline>("GET", `/cameras/${encodeURIComponent(cameraId)}/recordings${query({ since, until })}`, undefined, {
      signal: ctl.signal,
    })
      .then((r) => {
        if (r.ok) setTl(r.data);
        else
          setError(
            r.status === 404 && /not enabled/i.test(r.error)
              ? "Recording is not enabled on this server."
              : `The recordings cannot be shown: ${r.error}.`,
          );
      })
      .catch(() => undefined);
    return () => ctl.abort();
  }, [cameraId, at, half]);

  const a = tl ? Date.parse(tl.since) : 0;
  const b = tl ? Date.parse(tl.until) : 1;
  const x = (t: number) => ((Math.min(Math.max(t, a), b) - a) / Math.max(1, b - a)) * W;
  const runs = tl ? runsOf(tl.segments) : [];
  const axis = tl ? ticks(a, b, 5) : [];
  const fine = axis.length > 1 && axis[1]! - axis[0]! < 60_000; // labels need seconds

  const play = (run: Run, t: number | null) => {
    const seg = t === null ? run.segments[0]! : segmentAt(run, t);
    const start = Math.max(Date.parse(seg.start_at), run.start);
    const end = Math.min(run.end, start + MAX_CLIP_S * 1000);
    onPlay({ start: new Date(start).toISOString(), end: new Date(end).toISOString() });
  };

  const onRunClick = (run: Run, ev: MouseEvent<SVGRectElement>) => {
    const svg = ev.currentTarget.ownerSVGElement;
    if (!svg) return play(run, null);
    const box = svg.getBoundingClientRect();
    const t = a + ((ev.clientX - box.left) / box.width) * (b - a);
    play(run, t);
  };

  const gapCount = tl ? tl.gaps.length : 0;
  return (
    <section aria-labelledby="timeline-h" className={styles.timeline}>
      <div className={styles.timelineHead}>
        <h3 id="timeline-h">Recordings of {cameraId}</h3>
        <div role="group" aria-label="Timeline window" className={styles.seg}>
          {WINDOWS.map((w) => (
            <button
              key={w.s}
              type="button"
              className="secondary"
              aria-pressed={half === w.s}
              onClick={() => setHalf(w.s)}
            >
              {w.label}
            </button>
          ))}
        </div>
      </div>
      {error ? <p className="muted">{error}</p> : null}
      {!tl && !error ? <p className="muted">Loading recordings…</p> : null}
      {tl ? (
        <>
          <p className="muted" id="timeline-summary">
            {clock(tl.since)} – {clock(tl.until)}: {duration(tl.covered_s)} recorded in {runs.length}{" "}
            {runs.length === 1 ? "stretch" : "stretches"}, {gapCount} {gapCount === 1 ? "gap" : "gaps"}.
            {runs.length ? " Click a stretch to play it." : " Nothing was recorded then."}
          </p>
          <svg
            className={styles.timelineSvg}
            viewBox={`0 0 ${W} 60`}
            preserveAspectRatio="none"
            role="group"
            aria-label={`Recordings timeline of ${cameraId}`}
            aria-describedby="timeline-summary"
            data-testid="timeline"
          >
            <rect x={0} y={BAR_Y} width={W} height={BAR_H} className={styles.tlTrack} />
            {tl.gaps.map((g) => (
              <rect
                key={`gap-${g.start}`}
                x={x(Date.parse(g.start))}
                y={BAR_Y}
                width={Math.max(1, x(Date.parse(g.end)) - x(Date.parse(g.start)))}
                height={BAR_H}
                className={styles.tlGap}
                data-testid="timeline-gap"
              >
                <title>
                  Gap {clock(g.start)} – {clock(g.end)}
                </title>
              </rect>
            ))}
            {runs.map((run) => {
              const label = `Play recording ${clock(run.start)} – ${clock(run.end)} (${duration((run.end - run.start) / 1000)})`;
              return (
                <rect
                  key={`run-${run.start}`}
                  x={x(run.start)}
                  y={BAR_Y}
                  width={Math.max(2, x(run.end) - x(run.start))}
                  height={BAR_H}
                  className={styles.tlRun}
                  role="button"
                  tabIndex={0}
                  aria-label={label}
                  data-testid="timeline-segment"
                  onClick={(ev) => onRunClick(run, ev)}
                  onKeyDown={(ev) => {
                    if (ev.key === "Enter" || ev.key === " ") {
                      ev.preventDefault();
                      play(run, null);
                    }
                  }}
                >
                  <title>{label}</title>
                </rect>
              );
            })}
            {range ? (
              <rect
                x={x(Date.parse(range.start))}
                y={BAR_Y - 4}
                width={Math.max(2, x(Date.parse(range.end)) - x(Date.parse(range.start)))}
                height={BAR_H + 8}
                className={styles.tlRange}
                aria-hidden="true"
              />
            ) : null}
            <line x1={x(Date.parse(at))} x2={x(Date.parse(at))} y1={2} y2={AXIS_Y + 4} className={styles.tlNow} aria-hidden="true" />
            <line x1={0} x2={W} y1={AXIS_Y} y2={AXIS_Y} className={styles.tlAxis} aria-hidden="true" />
            {axis.map((t) => (
              <line key={t} x1={x(t)} x2={x(t)} y1={AXIS_Y} y2={AXIS_Y + 5} className={styles.tlAxis} aria-hidden="true" />
            ))}
          </svg>
          <div className={styles.tlLabels} aria-hidden="true">
            {axis.map((t) => (
              <span
                key={t}
                className={x(t) > W * 0.92 ? styles.tlEdgeR : x(t) < W * 0.08 ? styles.tlEdgeL : undefined}
                style={{ left: `${(x(t) / W) * 100}%` }}
              >
                {new Date(t).toLocaleTimeString(undefined, fine ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" })}
              </span>
            ))}
          </div>
          <p className={`muted ${styles.legend}`}>
            <span className={styles.swRun} aria-hidden="true" /> recorded <span className={styles.swGap} aria-hidden="true" /> gap{" "}
            <span className={styles.swNow} aria-hidden="true" /> the alert{range ? <> <span className={styles.swRange} aria-hidden="true" /> selected range</> : null}
          </p>
        </>
      ) : null}
    </section>
  );
}
