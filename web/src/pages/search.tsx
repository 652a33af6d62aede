// Search: events and incidents by words (GET /search), "more like this", Ask (streamed) and
// the microphone (POST /ask/voice). Says so clearly when search is off on this server.
import { useRouter } from "next/router";
import { useEffect, useMemo, useState, type FormEvent } from "react";
import Layout, { Notice } from "@/components/Layout";
import SearchAsk from "@/components/SearchAsk";
import SearchResultList from "@/components/SearchResultList";
import SearchVoice from "@/components/SearchVoice";
import { api, can, query, when } from "@/lib/api";
import { capabilities } from "@/lib/capabilities";
import { fromLocalInput, searchOff, toLocalInput, type Camera, type SearchHit, type SearchResults } from "@/lib/review";
import { useMe } from "@/lib/session";
import styles from "@/styles/search.module.css";

interface Params {
  q: string;
  camera_id: string;
  label: string;
  since: string;
  until: string;
  limit: string;
}

const LIMITS = ["10", "20", "50", "100"];

function paramsOf(q: Record<string, string | string[] | undefined>): Params {
  const one = (k: string) => {
    const v = q[k];
    return ((Array.isArray(v) ? v[0] : v) ?? "").slice(0, k === "q" ? 4000 : 64);
  };
  const iso = (v: string) => (v && !Number.isNaN(Date.parse(v)) ? v : "");
  const limit = one("limit");
  return {
    q: one("q"),
    camera_id: one("camera_id"),
    label: one("label"),
    since: iso(one("since")),
    until: iso(one("until")),
    limit: LIMITS.includes(limit) ? limit : "20",
  };
}

/** The form's values: times as `datetime-local` values in the browser's zone. */
function localDraft(p: Params): Params {
  return { ...p, since: toLocalInput(p.since), until: toLocalInput(p.until) };
}

export default function Search() {
  const me = useMe();
  const router = useRouter();
  const params = useMemo(() => paramsOf(router.query), [router.query]);
  const key = JSON.stringify(params);
  const [draft, setDraft] = useState<Params>(() => localDraft(params));
  const [results, setResults] = useState<SearchResults | null>(null);
  const [like, setLike] = useState<{ hit: SearchHit; results: SearchResults } | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [off, setOff] = useState(false);
  const [cameras, setCameras] = useState<Camera[] | null>(null);

  // Whether search runs here at all, from the server's capabilities (null: it cannot say; the
  // search answers themselves then tell).
  useEffect(() => {
    if (!can(me, "events:read")) return;
    let live = true;
    capabilities().then((c) => {
      if (live && c && !c.search) setOff(true);
    });
    return () => {
      live = false;
    };
  }, [me]);

  useEffect(() => setDraft(localDraft(params)), [key]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    if (!can(me, "cameras:read")) return;
    api<Camera[]>("GET", "/cameras").then((r) => {
      if (r.ok) setCameras(r.data.map((c) => ({ id: c.id, name: c.name })));
    });
  }, [me]);

  useEffect(() => {
    if (!router.isReady || !params.q.trim()) {
      setResults(null);
      return;
    }
    const ctl = new AbortController();
    setBusy(true);
    setError(null);
    setLike(null);
    const qs = query({
      q: params.q,
      camera_id: params.camera_id,
      label: params.label,
      since: params.since,
      until: params.until,
      limit: params.limit,
    });
    api<SearchResults>("GET", `/search${qs}`, undefined, { signal: ctl.signal })
      .then((r) => {
        setBusy(false);
        if (r.ok) setResults(r.data);
        else if (searchOff(r.status, r.error)) setOff(true);
        else setError(`The search failed: ${r.error}.`);
      })
      .catch(() => undefined);
    return () => ctl.abort();
  }, [router.isReady, key]); // eslint-disable-line react-hooks/exhaustive-deps

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const next: Record<string, string> = {};
    const out = { ...draft, since: fromLocalInput(draft.since), until: fromLocalInput(draft.until) };
    for (const [k, v] of Object.entries(out)) if (v && !(k === "limit" && v === "20")) next[k] = v;
    router.replace({ pathname: "/search", query: next }, undefined, { shallow: true, scroll: false });
  };

  const similar = async (hit: SearchHit) => {
    setBusy(true);
    setError(null);
    const path = hit.kind === "event" ? `/events/${encodeURIComponent(hit.id)}/similar` : `/incidents/${encodeURIComponent(hit.id)}/similar`;
    const r = await api<SearchResults>("GET", `${path}${query({ limit: params.limit })}`);
    setBusy(false);
    if (r.ok) {
      setLike({ hit, results: r.data });
      document.getElementById("results-h")?.focus();
    } else if (searchOff(r.status, r.error)) setOff(true);
    else setError(`"More like this" failed: ${r.error}.`);
  };

  if (!can(me, "events:read")) {
    return (
      <Layout title="Search">
        <Notice kind="error">Searching needs the events:read permission, which your role does not have.</Notice>
      </Layout>
    );
  }
  if (off) {
    return (
      <Layout title="Search">
        <Notice kind="error">
          <span data-testid="search-off">Search is not enabled on this server.</span> Ask your administrator to turn it on (settings:
          search.enabled).
        </Notice>
      </Layout>
    );
  }

  const shown = like ? like.results : results;
  const set = (k: keyof Params, v: string) => setDraft({ ...draft, [k]: v });
  return (
    <Layout title="Search">
      <form className={`filters ${styles.form}`} role="search" aria-label="Search events and incidents" onSubmit={submit}>
        <label className={styles.q}>
          Search for
          <input
            type="search"
            value={draft.q}
            maxLength={4000}
            onChange={(e) => set("q", e.target.value)}
            placeholder="a person in a red jacket at the gate"
            data-testid="search-input"
            required
          />
        </label>
        {cameras ? (
          <label>
            Camera
            <select value={draft.camera_id} onChange={(e) => set("camera_id", e.target.value)}>
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
            <input value={draft.camera_id} maxLength={64} onChange={(e) => set("camera_id", e.target.value)} />
          </label>
        )}
        <label>
          Label
          <input value={draft.label} maxLength={64} placeholder="person" onChange={(e) => set("label", e.target.value)} />
        </label>
        <label>
          From
          <input type="datetime-local" step={1} value={draft.since} onChange={(e) => set("since", e.target.value)} />
        </label>
        <label>
          To
          <input type="datetime-local" step={1} value={draft.until} onChange={(e) => set("until", e.target.value)} />
        </label>
        <label>
          Results
          <select value={draft.limit} onChange={(e) => set("limit", e.target.value)}>
            {LIMITS.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <button type="submit" data-testid="search-submit">
          Search
        </button>
      </form>

      {error ? <Notice kind="error">{error}</Notice> : null}
      <section aria-labelledby="results-h">
        <h2 id="results-h" tabIndex={-1}>
          {like ? `Like ${like.hit.label} on ${like.hit.camera_id} (${when(like.hit.started_at)})` : "Results"}
        </h2>
        <div role="status" aria-live="polite" className="muted">
          {busy
            ? "Searching…"
            : shown
              ? `${shown.items.length} ${shown.items.length === 1 ? "result" : "results"}${shown.index_backlog ? ` (${shown.index_backlog} recent items not indexed yet)` : ""}.`
              : "Type what you are looking for, in words."}
        </div>
        {like ? (
          <button type="button" className="link" onClick={() => setLike(null)}>
            Back to the results for “{params.q}”
          </button>
        ) : null}
        {shown && shown.items.length ? <SearchResultList items={shown.items} onSimilar={similar} /> : null}
      </section>

      <div className={styles.askArea}>
        <SearchAsk onOff={() => setOff(true)} />
        <SearchVoice />
      </div>
    </Layout>
  );
}
