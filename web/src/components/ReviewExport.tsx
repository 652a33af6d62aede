// Export a range of a camera's recording (POST /exports), then its status and download link.
import { useEffect, useState, type FormEvent } from "react";
import { api, when } from "@/lib/api";
import { useInterval, useVisible } from "@/lib/hooks";
import { fromLocalInput, toLocalInput, type Export } from "@/lib/review";
import styles from "@/styles/review.module.css";

export default function ReviewExport({
  cameraId,
  start,
  end,
  allowed,
  reason,
}: {
  cameraId: string;
  start: string;
  end: string;
  allowed: boolean;
  reason: string;
}) {
  const [from, setFrom] = useState(toLocalInput(start));
  const [to, setTo] = useState(toLocalInput(end));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [exp, setExp] = useState<Export | null>(null);
  const visible = useVisible();

  useEffect(() => {
    setFrom(toLocalInput(start));
    setTo(toLocalInput(end));
  }, [start, end]);

  const pending = !!exp && exp.status !== "ready" && exp.status !== "failed";
  useInterval(
    () => {
      if (!exp) return;
      api<Export>("GET", `/exports/${encodeURIComponent(exp.id)}`).then((r) => {
        if (r.ok) setExp(r.data);
      });
    },
    2000,
    pending && visible,
  );

  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    const s = fromLocalInput(from);
    const e = fromLocalInput(to);
    if (!s || !e) return setError("Give both the start and the end.");
    if (Date.parse(e) <= Date.parse(s)) return setError("The end must be after the start.");
    if (Date.parse(e) - Date.parse(s) > 3600_000) return setError("An export may last at most 1 hour.");
    setBusy(true);
    setError(null);
    setExp(null);
    const r = await api<Export>("POST", "/exports", { camera_id: cameraId, start: s, end: e });
    setBusy(false);
    if (r.ok) setExp(r.data);
    else if (r.status === 404 && /not enabled/i.test(r.error)) setError(`Exports are not available on this server (${r.error}).`);
    else if (r.status === 404 && /no footage/i.test(r.error)) setError("There is no footage in that range.");
    else setError(`The export failed: ${r.error}.`);
  };

  const noteId = "export-note";
  return (
    <section aria-labelledby="export-h">
      <h3 id="export-h">Export a range</h3>
      <form className={`filters ${styles.exportForm}`} onSubmit={submit}>
        <label>
          From
          <input type="datetime-local" step={1} value={from} onChange={(e) => setFrom(e.target.value)} required />
        </label>
        <label>
          To
          <input type="datetime-local" step={1} value={to} onChange={(e) => setTo(e.target.value)} required />
        </label>
        <button type="submit" disabled={!allowed || busy} aria-describedby={!allowed ? noteId : undefined} data-testid="export">
          {busy ? "Exporting…" : "Export"}
        </button>
      </form>
      {!allowed ? (
        <p id={noteId} className="muted">
          {reason}
        </p>
      ) : (
        <p className="muted">At most 1 hour. Click a stretch of the timeline to take its range.</p>
      )}
      <div role="status" aria-live="polite" data-testid="export-status">
        {busy ? <p>Assembling the clip…</p> : null}
        {error ? <p className="notice notice-error">{error}</p> : null}
        {exp ? (
          <p>
            Export <strong>{exp.name}</strong>: {" "}
            <span className={`badge ${exp.status === "ready" ? "badge-ok" : exp.status === "failed" ? "badge-bad" : "badge-warn"}`}>
              {exp.status}
            </span>{" "}
            {exp.status === "ready" ? (
              <>
                ({when(exp.start_at)} – {when(exp.end_at)}, {(exp.size / 1_048_576).toFixed(1)} MB){" "}
                <a href={`/api/v1/exports/${encodeURIComponent(exp.id)}.mp4`} download data-testid="export-download">
                  Download the export
                </a>
              </>
            ) : null}
            {exp.error ? <span className="muted"> {exp.error}</span> : null}
          </p>
        ) : null}
      </div>
    </section>
  );
}
