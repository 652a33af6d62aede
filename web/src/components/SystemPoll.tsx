// Polling and degradation for the System page's blocks: each block fetches every 10 s while
// the tab is visible, keeps its last good answer, and says plainly why it has none.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import type { ApiResult } from "@/lib/api";
import { useInterval, useVisible } from "@/lib/hooks";
import { Notice } from "./Layout";

export const REFRESH_MS = 10_000;

export interface Polled<T> {
  data: T | null;
  error: { status: number; error: string } | null;
  loading: boolean;
  at: Date | null;
}

/** Calls `fetcher` now, then every 10 s while the tab is visible, and again when `key` changes. */
export function usePoll<T>(fetcher: (signal: AbortSignal) => Promise<ApiResult<T>>, key = ""): Polled<T> {
  const visible = useVisible();
  const [state, setState] = useState<Polled<T>>({ data: null, error: null, loading: true, at: null });
  const ctrl = useRef<AbortController | null>(null);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;

  const load = useCallback(async () => {
    ctrl.current?.abort();
    const c = new AbortController();
    ctrl.current = c;
    try {
      const r = await fetcherRef.current(c.signal);
      if (c.signal.aborted) return;
      setState((prev) =>
        r.ok
          ? { data: r.data, error: null, loading: false, at: new Date() }
          : { data: r.status === 403 || r.status === 404 ? null : prev.data, error: { status: r.status, error: r.error }, loading: false, at: prev.at },
      );
    } catch {
      /* aborted: a newer load is on its way */
    }
  }, []);

  useEffect(() => () => ctrl.current?.abort(), []);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false; // useInterval loads at once on mount
      return;
    }
    setState((prev) => ({ data: null, error: null, loading: true, at: prev.at })); // another question: old answers do not fit
    if (visible) void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  useInterval(() => void load(), REFRESH_MS, visible);
  return state;
}

/** What a block says instead of its content when its API refused or failed. */
export function explain(what: string, scope: string, status: number, error: string): string {
  if (status === 403) return `${what}: not shown — your account lacks the ${scope} permission.`;
  if (status === 404) return `${what}: this server has no such API (404).`;
  if (status === 503) return `${what}: not available right now — the service is off or starting (503: ${error}).`;
  if (status === 0) return `${what}: the server cannot be reached; retrying every 10 s.`;
  return `${what}: the server answered ${status} (${error}).`;
}

export function SystemState<T>({ polled, what, scope, children }: { polled: Polled<T>; what: string; scope: string; children: (data: T) => ReactNode }) {
  const { data, error, loading } = polled;
  return (
    <>
      {error ? <Notice kind={error.status === 403 || error.status === 404 ? "info" : "error"}>{explain(what, scope, error.status, error.error)}</Notice> : null}
      {data !== null ? children(data) : loading && !error ? <p className="muted" role="status">Loading {what.toLowerCase()}…</p> : null}
    </>
  );
}
