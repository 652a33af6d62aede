import { useState } from "react";
import Layout from "@/components/Layout";
import SystemHealth from "@/components/SystemHealth";
import { SystemAlerts, SystemEvents, SystemLastHour, SystemStorage } from "@/components/SystemCharts";
import { SystemState, usePoll } from "@/components/SystemPoll";
import { api, query } from "@/lib/api";
import { getHealth, type AlertHistory, type EventHistory, type StorageReport, type SystemHistory } from "@/lib/system";
import s from "@/styles/system.module.css";

const WINDOWS = [6, 24, 72, 168];

export default function Page() {
  const [hours, setHours] = useState(24);
  // The API widens a window to whole hours (and refuses more than 7 days): starting `hours` - 1
  // hours ago gives exactly `hours` bars, the current hour last.
  const since = () => query({ start: new Date(Date.now() - (hours - 1) * 3600_000).toISOString() });

  const health = usePoll(getHealth);
  const system = usePoll((signal) => api<SystemHistory>("GET", "/dashboard/system", undefined, { signal }));
  const events = usePoll((signal) => api<EventHistory>("GET", `/dashboard/events${since()}`, undefined, { signal }), String(hours));
  const alerts = usePoll((signal) => api<AlertHistory>("GET", `/dashboard/alerts${since()}`, undefined, { signal }), String(hours));
  const storage = usePoll((signal) => api<StorageReport>("GET", "/storage", undefined, { signal }));

  return (
    <Layout title="System">
      <p className="muted">
        Refreshes every 10 s while this tab is visible{health.at ? `; last at ${health.at.toLocaleTimeString()}` : ""}.
      </p>

      <section aria-labelledby="h-health" className={s.section}>
        <h2 id="h-health">Health</h2>
        <SystemState polled={health} what="Health" scope="(none)">
          {(h) => <SystemHealth health={h} />}
        </SystemState>
      </section>

      <section aria-labelledby="h-hour" className={s.section}>
        <h2 id="h-hour">The last hour</h2>
        <SystemState polled={system} what="Camera and agent figures" scope="metrics:read">
          {(h) => <SystemLastHour history={h} />}
        </SystemState>
      </section>

      <section aria-labelledby="h-activity" className={s.section}>
        <div className={s.sectionHead}>
          <h2 id="h-activity">Events and alerts</h2>
          <label className={s.inline}>
            Window
            <select value={hours} onChange={(e) => setHours(Number(e.target.value))} data-testid="window">
              {WINDOWS.map((w) => (
                <option key={w} value={w}>
                  {w < 48 ? `last ${w} hours` : `last ${w / 24} days`}
                </option>
              ))}
            </select>
          </label>
        </div>
        <h3>Events</h3>
        <SystemState polled={events} what="Events per hour" scope="events:read">
          {(e) => <SystemEvents events={e} />}
        </SystemState>
        <h3>Alerts</h3>
        <SystemState polled={alerts} what="Alerts per hour" scope="alerts:read">
          {(a) => <SystemAlerts alerts={a} />}
        </SystemState>
      </section>

      <section aria-labelledby="h-storage" className={s.section}>
        <h2 id="h-storage">Storage</h2>
        <SystemState polled={storage} what="Storage" scope="metrics:read">
          {(st) => <SystemStorage storage={st} />}
        </SystemState>
      </section>
    </Layout>
  );
}
