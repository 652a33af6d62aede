// The review page's filters: camera, label, status, severity, verdict and a time range.
import { useEffect, useState, type FormEvent } from "react";
import { fromLocalInput, NO_FILTERS, SEVERITIES, STATUSES, toLocalInput, type Camera, type ReviewFilters as Filters } from "@/lib/review";
import styles from "@/styles/review.module.css";

const VERDICT_LABEL: Record<string, string> = {
  true_positive: "True positive",
  false_positive: "False positive",
  none: "Not judged yet",
};

export default function ReviewFilters({
  value,
  cameras,
  onApply,
}: {
  value: Filters;
  cameras: Camera[] | null;
  onApply: (f: Filters) => void;
}) {
  const [draft, setDraft] = useState(value);
  const [since, setSince] = useState(toLocalInput(value.since));
  const [until, setUntil] = useState(toLocalInput(value.until));
  useEffect(() => {
    setDraft(value);
    setSince(toLocalInput(value.since));
    setUntil(toLocalInput(value.until));
  }, [value]);

  const full = (d: Filters): Filters => ({ ...d, since: fromLocalInput(since), until: fromLocalInput(until) });
  const choose = (key: keyof Filters, v: string) => {
    const next = { ...draft, [key]: v };
    setDraft(next);
    onApply(full(next));
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onApply(full(draft));
  };
  const cameraKnown = !draft.camera_id || !cameras || cameras.some((c) => c.id === draft.camera_id);

  return (
    <form className={`filters ${styles.filters}`} onSubmit={submit} aria-label="Filter alerts" role="search">
      {cameras && cameraKnown ? (
        <label>
          Camera
          <select value={draft.camera_id} onChange={(e) => choose("camera_id", e.target.value)} data-testid="filter-camera">
            <option value="">All cameras</option>
            {cameras.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name ? `${c.name} (${c.id})` : c.id}
              </option>
            ))}
          </select>
        </label>
      ) : (
        <label>
          Camera id
          <input value={draft.camera_id} maxLength={64} onChange={(e) => setDraft({ ...draft, camera_id: e.target.value })} data-testid="filter-camera" />
        </label>
      )}
      <label>
        Label
        <input value={draft.label} maxLength={64} placeholder="person, car…" onChange={(e) => setDraft({ ...draft, label: e.target.value })} data-testid="filter-label" />
      </label>
      <label>
        Status
        <select value={draft.status} onChange={(e) => choose("status", e.target.value)} data-testid="filter-status">
          <option value="">Any</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s === "open" ? "Open (not acknowledged)" : s === "acknowledged" ? "Acknowledged" : "Withdrawn"}
            </option>
          ))}
        </select>
      </label>
      <label>
        Severity
        <select value={draft.severity} onChange={(e) => choose("severity", e.target.value)}>
          <option value="">Any</option>
          {SEVERITIES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Verdict
        <select value={draft.verdict} onChange={(e) => choose("verdict", e.target.value)} data-testid="filter-verdict">
          <option value="">Any</option>
          {Object.entries(VERDICT_LABEL).map(([k, v]) => (
            <option key={k} value={k}>
              {v}
            </option>
          ))}
        </select>
      </label>
      <label>
        From
        <input type="datetime-local" step={1} value={since} onChange={(e) => setSince(e.target.value)} />
      </label>
      <label>
        To
        <input type="datetime-local" step={1} value={until} onChange={(e) => setUntil(e.target.value)} />
      </label>
      <div className="row">
        <button type="submit">Apply</button>
        <button type="button" className="secondary" onClick={() => onApply(NO_FILTERS)}>
          Clear
        </button>
      </div>
    </form>
  );
}
