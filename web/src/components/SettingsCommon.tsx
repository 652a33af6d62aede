// Shared pieces of the Settings sections: a loaded list, field errors, a two-step delete.
import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from "react";
import { api, type ApiResult } from "@/lib/api";
import { Notice } from "./Layout";
import s from "@/styles/settings.module.css";

export interface Loaded<T> {
  data: T | null;
  error: { status: number; error: string } | null;
  reload: () => void;
}

/** GET `path` on mount and on reload(). */
export function useLoad<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: Loaded<T>["error"] }>({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) return;
    const c = new AbortController();
    api<T>("GET", path, undefined, { signal: c.signal })
      .then((r: ApiResult<T>) => {
        if (r.ok) setState({ data: r.data, error: null });
        else setState((prev) => ({ data: r.status === 403 || r.status === 404 ? null : prev.data, error: { status: r.status, error: r.error } }));
      })
      .catch(() => undefined);
    return () => c.abort();
  }, [path, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** A section's notice when its list could not be read. */
export function LoadNotice({ what, scope, error, absent }: { what: string; scope: string; error: Loaded<unknown>["error"]; absent?: string }) {
  if (!error) return null;
  const { status } = error;
  if (status === 403) return <Notice>{what}: your account lacks the {scope} permission.</Notice>;
  if (status === 404) return <Notice>{absent ?? `${what}: this server has no such API (404).`}</Notice>;
  if (status === 503) return <Notice kind="error">{what}: not available right now (503: {error.error}).</Notice>;
  return <Notice kind="error">{what}: {error.error}</Notice>;
}

/** An error next to a control (role="alert"), with the id the control points at. */
export function FieldError({ id, text }: { id: string; text: string | undefined }) {
  if (!text) return null;
  return (
    <span id={id} className={s.fieldError} role="alert">
      {text}
    </span>
  );
}

/** A labelled input with its own error; `error` marks it invalid and describes it. */
export function Field({
  label,
  error,
  hint,
  children,
}: {
  label: string;
  error?: string;
  hint?: string;
  children: (props: { id: string; "aria-invalid": boolean | undefined; "aria-describedby": string | undefined }) => ReactNode;
}) {
  const id = useId();
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const described = [hint ? hintId : "", error ? errId : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div className={s.field}>
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-invalid": error ? true : undefined, "aria-describedby": described })}
      {hint ? (
        <span id={hintId} className={s.hint}>
          {hint}
        </span>
      ) : null}
      <FieldError id={errId} text={error} />
    </div>
  );
}

/** A button that asks before acting: "Remove" → "Remove x? [Yes, remove] [Cancel]". */
export function ConfirmButton({
  label,
  question,
  confirm,
  onConfirm,
  testid,
  name,
}: {
  label: string;
  name?: string; // the accessible name of the first button when `label` alone is ambiguous
  question: string;
  confirm: string;
  onConfirm: () => Promise<string | null>;
  testid?: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const yes = useRef<HTMLButtonElement>(null);
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  const go = async () => {
    // The row may go away with its buttons: focus then moves to the section's heading.
    const heading = yes.current?.closest("section")?.querySelector<HTMLElement>("h2");
    setBusy(true);
    const err = await onConfirm();
    setBusy(false);
    setError(err);
    if (err) return;
    setAsking(false);
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  };
  return (
    <span className={s.confirm}>
      {asking ? (
        <>
          <span>{question}</span>
          <button ref={yes} type="button" className="danger" onClick={go} disabled={busy} data-testid={testid ? `${testid}-confirm` : undefined}>
            {confirm}
          </button>
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setAsking(false);
              setError(null);
              setTimeout(() => first.current?.focus(), 0);
            }}
          >
            Cancel
          </button>
        </>
      ) : (
        <button ref={first} type="button" className="secondary" onClick={() => setAsking(true)} data-testid={testid} aria-label={name}>
          {label}
        </button>
      )}
      {error ? (
        <span className={s.fieldError} role="alert">
          {error}
        </span>
      ) : null}
    </span>
  );
}

/** The end of a settings form: its submit button, the errors that name no field, and what
 * was done (a polite status). */
export function FormEnd({ busy, label, busyLabel, rest, done }: { busy: boolean; label: string; busyLabel: string; rest: string | null | undefined; done: ReactNode }) {
  return (
    <>
      <div className="row">
        <button type="submit" disabled={busy}>
          {busy ? busyLabel : label}
        </button>
      </div>
      {rest ? (
        <p className={s.fieldError} role="alert">
          {rest}
        </p>
      ) : null}
      <p role="status" className={s.ok}>
        {done}
      </p>
    </>
  );
}
