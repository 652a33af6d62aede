// Review: alerts newest first with filters in the URL, live arrivals, and the selected alert's
// snapshot, summary, clip, decision, recording timeline and export (see ReviewDetail).
import { useRouter } from "next/router";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import Layout, { Notice } from "@/components/Layout";
import ReviewDetail from "@/components/ReviewDetail";
import ReviewFilters from "@/components/ReviewFilters";
import ReviewList from "@/components/ReviewList";
import { api, can, query } from "@/lib/api";
import { live } from "@/lib/live";
import {
  alertsQuery,
  filtersFromQuery,
  isTyping,
  localFilter,
  mergeLive,
  queryOf,
  type Alert,
  type AlertPage,
  type Camera,
  type ReviewFilters as Filters,
} from "@/lib/review";
import { useMe } from "@/lib/session";
import styles from "@/styles/review.module.css";

const PAGE = 50;
const MIN_SHOWN = 20;
const MAX_AUTO_PAGES = 5;

export default function Review() {
  const me = useMe();
  const router = useRouter();
  const ready = router.isReady;
  // Stable while only the selection changes (the filters' drafts and the list stay).
  const filterKey = JSON.stringify(filtersFromQuery(router.query));
  const filters = useMemo(() => JSON.parse(filterKey) as Filters, [filterKey]);
  const urlAlert = typeof router.query.alert === "string" ? router.query.alert.slice(0, 64) : null;

  const [items, setItems] = useState<Alert[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<{ status: number; text: string } | null>(null);
  const [cameras, setCameras] = useState<Camera[] | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [extra, setExtra] = useState<Alert | null>(null);
  const [extraError, setExtraError] = useState<string | null>(null);
  const [said, setSaid] = useState("");
  const [reloads, setReloads] = useState(0);
  const detailRef = useRef<HTMLDivElement>(null);
  // The filters start folded on narrow screens (the list comes first there).
  const [wide, setWide] = useState(true);
  useEffect(() => setWide(window.matchMedia("(min-width: 900px)").matches), []);

  const announce = useCallback((text: string) => {
    setSaid("");
    setTimeout(() => setSaid(text), 50);
  }, []);

  // The selection follows the URL (a link or a notification: /review?alert=<id>).
  useEffect(() => {
    if (ready) setSelected(urlAlert);
  }, [ready, urlAlert]);

  const setUrl = useCallback(
    (f: Filters, alertId: string | null) => {
      router.replace({ pathname: "/review", query: queryOf(f, alertId) }, undefined, { shallow: true, scroll: false });
    },
    [router],
  );

  useEffect(() => {
    if (!can(me, "cameras:read")) return;
    api<Camera[]>("GET", "/cameras").then((r) => {
      if (r.ok) setCameras(r.data.map((c) => ({ id: c.id, name: c.name })));
    });
  }, [me]);

  // Loads pages until enough pass the filters the API cannot apply (label, verdict).
  const load = useCallback(
    async (from: string | null, base: Alert[], signal: AbortSignal) => {
      let all = base;
      let next = from;
      let pages = 0;
      setLoading(true);
      do {
        const r = await api<AlertPage>("GET", `/alerts${query(alertsQuery(filters, next, PAGE))}`, undefined, { signal });
        if (signal.aborted) return;
        if (!r.ok) {
          setError({ status: r.status, text: r.error });
          setLoading(false);
          return;
        }
        const seen = new Set(all.map((a) => a.id));
        all = all.concat(r.data.items.filter((a) => !seen.has(a.id)));
        next = r.data.next_cursor;
        pages += 1;
      } while (next && localFilter(all, filters).length - localFilter(base, filters).length < MIN_SHOWN && pages < MAX_AUTO_PAGES);
      setError(null);
      setItems(all);
      setCursor(next);
      setLoading(false);
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [filterKey],
  );

  useEffect(() => {
    if (!ready) return;
    const ctl = new AbortController();
    setItems([]);
    setCursor(null);
    load(null, [], ctl.signal).catch(() => undefined);
    return () => ctl.abort();
  }, [ready, load, reloads]);

  const more = () => {
    const ctl = new AbortController();
    load(cursor, items, ctl.signal).catch(() => undefined);
  };

  // Live: new alerts appear, changed ones update in place; a reset reloads over REST.
  const state = useRef({ filters, cursor });
  state.current = { filters, cursor };
  useEffect(() => {
    if (!can(me, "alerts:read")) return;
    return live().subscribe((m) => {
      if (m.type === "reset") {
        setReloads((n) => n + 1);
        return;
      }
      if (m.type !== "alert") return;
      setItems((cur) => {
        const r = mergeLive(cur, m, state.current.filters, state.current.cursor === null);
        if (r.added) {
          const a = r.added;
          setTimeout(() => announce(`New ${a.severity} alert: ${a.label} on ${a.camera_id}.`), 0);
        }
        return r.items;
      });
      setExtra((cur) => (cur && cur.id === m.id ? mergeLive([cur], m, state.current.filters, true).items[0] ?? cur : cur));
    });
  }, [me, announce]);

  const active = Object.values(filters).filter(Boolean).length;
  const shown = useMemo(() => localFilter(items, filters), [items, filters]);
  const current = shown.find((a) => a.id === selected) ?? items.find((a) => a.id === selected) ?? (extra?.id === selected ? extra : null);

  // An alert asked for by the URL but not in the loaded pages is fetched alone.
  useEffect(() => {
    if (!selected || loading || items.some((a) => a.id === selected) || extra?.id === selected) return;
    setExtraError(null);
    api<Alert>("GET", `/alerts/${encodeURIComponent(selected)}`).then((r) => {
      if (r.ok) setExtra(r.data);
      else setExtraError(r.status === 404 ? `Alert ${selected} was not found (or is not yours to see).` : `Alert ${selected} cannot be loaded: ${r.error}.`);
    });
  }, [selected, loading, items, extra]);

  const select = useCallback(
    (id: string, focus = false) => {
      setSelected(id);
      setUrl(filters, id);
      if (focus) document.getElementById(`alert-${id}`)?.focus();
      if (typeof window !== "undefined" && window.matchMedia("(max-width: 899px)").matches) {
        setTimeout(() => detailRef.current?.scrollIntoView({ block: "start" }), 0);
      }
    },
    [filters, setUrl],
  );

  // Wide screens: the list (its own scroller) keeps the selected alert in sight.
  useEffect(() => {
    if (!selected || !window.matchMedia("(min-width: 900px)").matches) return;
    document.getElementById(`alert-${selected}`)?.scrollIntoView({ block: "nearest" });
  }, [selected, shown.length]);

  const onChange = (a: Alert) => {
    setItems((cur) => cur.map((x) => (x.id === a.id ? a : x)));
    setExtra((cur) => (cur && cur.id === a.id ? a : cur));
  };

  // j / ↓ next, k / ↑ previous.
  const nav = useRef({ shown, selected, select });
  nav.current = { shown, selected, select };
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || isTyping(e.target)) return;
      const step = e.key === "j" || e.key === "ArrowDown" ? 1 : e.key === "k" || e.key === "ArrowUp" ? -1 : 0;
      const { shown: list, selected: sel, select: pick } = nav.current;
      if (!step || !list.length) return;
      e.preventDefault();
      const at = list.findIndex((a) => a.id === sel);
      const next = at < 0 ? 0 : Math.min(list.length - 1, Math.max(0, at + step));
      pick(list[next]!.id, true);
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, []);

  if (!can(me, "alerts:read")) {
    return (
      <Layout title="Review">
        <Notice kind="error">Reviewing alerts needs the alerts:read permission, which your role does not have.</Notice>
      </Layout>
    );
  }

  return (
    <Layout title="Review">
      <p className={styles.sr} role="status" aria-live="polite" data-testid="announcer">
        {said}
      </p>
      <details className={styles.filterBox} open={wide} onToggle={(e) => setWide(e.currentTarget.open)}>
        <summary>
          Filters{active ? ` (${active} on)` : ""}
        </summary>
        <ReviewFilters value={filters} cameras={cameras} onApply={(f) => setUrl(f, selected)} />
      </details>
      <p className={`muted ${styles.help}`} data-testid="shortcuts">
        Keys: <kbd>j</kbd>/<kbd>↓</kbd> next, <kbd>k</kbd>/<kbd>↑</kbd> previous, <kbd>a</kbd> acknowledge, <kbd>t</kbd> true positive,{" "}
        <kbd>f</kbd> false positive, <kbd>o</kbd> play the clip.
      </p>
      {error ? (
        <Notice kind="error">
          {error.status === 403 ? "You may not list alerts." : error.status === 404 ? "The alerts API is not available on this server." : `The alerts cannot be loaded: ${error.text}.`}
        </Notice>
      ) : null}
      <div className={`${styles.layout} ${current ? styles.hasDetail : ""}`}>
        <section aria-labelledby="alerts-h" className={styles.listPane}>
          <h2 id="alerts-h">
            Alerts <span className="muted">({shown.length}{cursor ? "+" : ""})</span>
          </h2>
          {loading && !items.length ? <p role="status">Loading alerts…</p> : null}
          {!loading && !error && !shown.length ? <p className="muted">No alerts match these filters.</p> : null}
          <ReviewList items={shown} selected={selected} onSelect={(id) => select(id)} />
          {cursor ? (
            <button type="button" className="secondary" onClick={more} disabled={loading}>
              {loading ? "Loading…" : "Load older alerts"}
            </button>
          ) : null}
        </section>
        <div className={styles.detailPane} ref={detailRef}>
          {current ? (
            <ReviewDetail alert={current} me={me} onChange={onChange} announce={announce} />
          ) : extraError && selected ? (
            <Notice kind="error">{extraError}</Notice>
          ) : (
            <p className={`muted ${styles.empty}`}>{selected ? "Loading the alert…" : "Select an alert to review it."}</p>
          )}
        </div>
      </div>
    </Layout>
  );
}
