import type { Health } from "@/lib/system";
import { short } from "@/lib/system";
import s from "@/styles/system.module.css";

const GOOD_STATES = new Set(["running"]);
const WAIT_STATES = new Set(["starting", "reconnecting", "finished", "stopped"]);

function badge(ok: boolean, warn = false): string {
  return ok ? "badge badge-ok" : warn ? "badge badge-warn" : "badge badge-bad";
}

export default function SystemHealth({ health }: { health: Health }) {
  const cams = Object.entries(health.cameras).sort(([a], [b]) => a.localeCompare(b));
  const backlog = health.search_backlog;
  return (
    <div data-testid="system-health">
      <ul className={`cards ${s.cards}`}>
        <li className="panel">
          <span className={s.figureLabel}>Overall</span>
          <span className={badge(health.ready)}>{health.ready ? "ready" : "not ready"}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Database</span>
          <span className={badge(health.database === "ok")}>{health.database}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Detector</span>
          <span className={badge(health.detector === "ok", health.detector === "not ready")}>{health.detector}</span>
        </li>
        <li className="panel">
          <span className={s.figureLabel}>Search backlog</span>
          {backlog === null ? (
            <span className="muted">search is off</span>
          ) : (
            <span className={badge(backlog < 100, backlog < 1000)}>{short(backlog)} waiting</span>
          )}
        </li>
      </ul>
      <h3>Cameras</h3>
      {cams.length ? (
        <ul className={s.states} aria-label="Camera states">
          {cams.map(([id, state]) => (
            <li key={id}>
              <span className={s.camId}>{id}</span> <span className={badge(GOOD_STATES.has(state), WAIT_STATES.has(state))}>{state}</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No camera states (none configured, or none you may see).</p>
      )}
    </div>
  );
}
