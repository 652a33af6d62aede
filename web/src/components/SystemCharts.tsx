// The System page's chart blocks: the last hour of cameras and agent, events and alerts per
// hour over a chosen window, and recording storage.
import ChartBars from "./ChartBars";
import ChartLine from "./ChartLine";
import type { Series } from "./ChartCommon";
import { bytes, clock, short, type AlertHistory, type EventHistory, type StorageReport, type SystemHistory } from "@/lib/system";
import { when } from "@/lib/api";
import s from "@/styles/system.module.css";

type Metric = "fps_decoded" | "fps_dropped" | "detector_calls_per_s" | "detector_latency_ms" | "batch_size";

function perCamera(h: SystemHistory, metric: Metric): Series[] {
  return Object.entries(h.cameras).map(([id, c]) => ({ label: id, values: c[metric] }));
}

export function SystemLastHour({ history }: { history: SystemHistory }) {
  const x = history.times.map(clock);
  const cams = Object.keys(history.cameras).length;
  return (
    <>
      <p className="muted">
        Sampled every {history.interval_s} s by this API process ({history.times.length} intervals so far); {cams} camera{cams === 1 ? "" : "s"}.
      </p>
      <div className={s.charts}>
        <ChartLine name="fps-decoded" title="Frames decoded" unit="frames/s" x={x} series={perCamera(history, "fps_decoded")} />
        <ChartLine name="fps-dropped" title="Frames dropped" unit="frames/s" x={x} series={perCamera(history, "fps_dropped")} />
        <ChartLine name="detector-latency" title="Detector latency" unit="ms, mean" x={x} series={perCamera(history, "detector_latency_ms")} />
        <ChartLine name="batch-size" title="Detector batch size" unit="frames, mean" x={x} series={perCamera(history, "batch_size")} />
        {history.agent ? (
          <>
            <ChartLine name="agent-backlog" title="Agent backlog" unit="items" x={x} area series={[{ label: "backlog", values: history.agent.backlog }]} />
            <ChartLine
              name="agent-decisions"
              title="Agent decisions"
              unit="per minute"
              x={x}
              area
              series={[{ label: "decisions", values: history.agent.decisions_per_min }]}
            />
          </>
        ) : (
          <p className="notice" data-testid="agent-off">
            The agent is not running here: no backlog or decision figures.
          </p>
        )}
      </div>
    </>
  );
}

function hourFull(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

function hourLabel(iso: string, long: boolean): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return long
    ? d.toLocaleString(undefined, { weekday: "short", hour: "numeric" })
    : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** The `top` biggest series by total, the rest summed as "other". */
function topSeries(by: Record<string, number[]>, n: number, top = 7): { label: string; values: number[] }[] {
  const entries = Object.entries(by).map(([label, values]) => ({ label: label || "(none)", values, total: values.reduce((a, b) => a + b, 0) }));
  entries.sort((a, b) => b.total - a.total || a.label.localeCompare(b.label));
  const head = entries.slice(0, top).map(({ label, values }) => ({ label, values }));
  const rest = entries.slice(top);
  if (rest.length) {
    const other = new Array<number>(n).fill(0);
    for (const r of rest) r.values.forEach((v, i) => (other[i] = (other[i] ?? 0) + v));
    head.push({ label: `other (${rest.length})`, values: other });
  }
  return head;
}

export function SystemEvents({ events }: { events: EventHistory }) {
  const long = events.hours.length > 26;
  const x = events.hours.map((h) => hourLabel(h, long));
  const n = events.hours.length;
  const total = events.total.reduce((a, b) => a + b, 0);
  return (
    <>
      <p className="muted">
        {short(total)} events from {when(events.start)} to {when(events.end)}.
      </p>
      <div className={s.charts}>
        <ChartBars name="events-by-camera" title="Events per hour, by camera" unit="events" x={x} xFull={events.hours.map(hourFull)} stacks={topSeries(events.by_camera, n)} />
        <ChartBars name="events-by-label" title="Events per hour, by label" unit="events" x={x} xFull={events.hours.map(hourFull)} stacks={topSeries(events.by_label, n)} />
      </div>
    </>
  );
}

export function SystemAlerts({ alerts }: { alerts: AlertHistory }) {
  const long = alerts.hours.length > 26;
  const x = alerts.hours.map((h) => hourLabel(h, long));
  const unjudged = alerts.alerts.map((a, i) => Math.max(0, a - (alerts.true_positive[i] ?? 0) - (alerts.false_positive[i] ?? 0)));
  const t = alerts.totals;
  const fpr = alerts.false_positive_rate;
  return (
    <>
      <ul className={`cards ${s.cards}`}>
        <li className="panel">
          <span className={s.figureLabel}>Alerts</span>
          <span className={s.figure}>{short(t.alerts ?? 0)}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Mean rate</span>
          <span className={s.figure}>{short(alerts.alerts_per_hour)}/h</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>False positives (of judged)</span>
          <span className={s.figure}>{fpr === null ? "none judged" : `${Math.round(fpr * 100)} %`}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Acknowledged</span>
          <span className={s.figure}>{short(t.acknowledged ?? 0)}</span>
        </li>
      </ul>
      <div className={s.charts}>
        <ChartBars
          name="alerts-verdicts"
          title="Alerts per hour, by verdict"
          unit="alerts"
          x={x}
          xFull={alerts.hours.map(hourFull)}
          stacks={[
            { label: "true positive", values: alerts.true_positive },
            { label: "false positive", values: alerts.false_positive },
            { label: "not judged", values: unjudged },
          ]}
        />
      </div>
    </>
  );
}

export function SystemStorage({ storage }: { storage: StorageReport }) {
  const biggest = Math.max(1, ...storage.cameras.map((c) => c.bytes));
  const disk = storage.disk;
  const budget = storage.budget_bytes;
  const usedPct = budget ? Math.min(100, (storage.total_bytes / budget) * 100) : null;
  return (
    <div data-testid="system-storage">
      <ul className={`cards ${s.cards}`}>
        <li className="panel">
          <span className={s.figureLabel}>Recordings</span>
          <span className={s.figure}>{bytes(storage.total_bytes)}</span>
          <span className="muted">{short(storage.total_segments)} segments</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Budget</span>
          <span className={s.figure}>{budget ? bytes(budget) : "none"}</span>
          {usedPct !== null ? (
            <>
              <span className={s.meter} role="img" aria-label={`${Math.round(usedPct)} % of the budget used`}>
                <span className={usedPct > 90 ? s.meterBad : s.meterFill} style={{ width: `${usedPct}%` }} />
              </span>
              <span className="muted">{Math.round(usedPct)} % used</span>
            </>
          ) : (
            <span className="muted">{storage.archive === null && budget === null ? "retention is not running" : "no byte budget"}</span>
          )}
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Disk free</span>
          <span className={s.figure}>{disk ? bytes(disk.free_bytes) : "—"}</span>
          <span className="muted">{disk ? `of ${bytes(disk.total_bytes)}` : "not a local disk"}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Archived</span>
          <span className={s.figure}>{bytes(storage.archived_bytes)}</span>
          <span className="muted">{short(storage.archived_segments)} segments</span>
        </li>
      </ul>
      {storage.cameras.length ? (
        <div className={`table-wrap ${s.wrap}`} role="region" aria-label="Storage per camera table" tabIndex={0}>
          <table className={s.storageTable}>
            <caption className={s.srOnly}>Recording storage per camera</caption>
            <thead>
              <tr>
                <th scope="col">Camera</th>
                <th scope="col">Used</th>
                <th scope="col" className={s.barCol}>
                  <span className={s.srOnly}>Share</span>
                </th>
                <th scope="col">Segments</th>
                <th scope="col">Archived</th>
                <th scope="col">Oldest</th>
              </tr>
            </thead>
            <tbody>
              {storage.cameras.map((c) => (
                <tr key={c.camera_id}>
                  <th scope="row">{c.camera_id}</th>
                  <td className={s.nowrap}>{bytes(c.bytes)}</td>
                  <td className={s.barCol}>
                    <span className={s.meter} aria-hidden="true">
                      <span className={s.meterFill} style={{ width: `${(c.bytes / biggest) * 100}%` }} />
                    </span>
                  </td>
                  <td>{short(c.segments)}</td>
                  <td className={s.nowrap}>{bytes(c.archived_bytes)}</td>
                  <td>{when(c.oldest_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">No recordings stored (for the cameras you may see).</p>
      )}
    </div>
  );
}
