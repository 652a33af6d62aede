// Ask a question: POST /ask as server-sent events, the answer shown as it streams.
import { useRef, useState, type FormEvent } from "react";
import { askStream, searchOff, type AskAnswer, type Citation } from "@/lib/review";
import SearchCitations from "./SearchCitations";
import styles from "@/styles/search.module.css";

const MODE: Record<AskAnswer["mode"], string> = {
  llm: "written by the assistant from the sources",
  retrieval_only: "the sources as found (no assistant answer)",
  nothing_found: "nothing relevant was found",
};

export default function SearchAsk({ onOff }: { onOff: () => void }) {
  const [question, setQuestion] = useState("");
  const [text, setText] = useState("");
  const [citations, setCitations] = useState<Citation[]>([]);
  const [done, setDone] = useState<AskAnswer | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const q = question.trim();
    if (!q) return;
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    setText("");
    setCitations([]);
    setDone(null);
    setError(null);
    try {
      const failed = await askStream(
        q,
        (ev) => {
          if (ev.event === "sources") setCitations(ev.citations);
          else if (ev.event === "delta") setText((t) => t + ev.text);
          else if (ev.event === "done") {
            setDone(ev.answer);
            setText(ev.answer.answer);
            setCitations(ev.answer.citations ?? []);
          } else if (ev.event === "error") setError(`The answer failed: ${ev.detail}`);
        },
        ctl.signal,
      );
      if (failed) {
        if (searchOff(failed.status, failed.error)) onOff();
        else setError(`The question was not answered: ${failed.error}.`);
      }
    } catch (err) {
      if ((err as Error).name !== "AbortError") setError("The answer was cut off.");
    } finally {
      if (abort.current === ctl) setBusy(false);
    }
  };

  return (
    <section aria-labelledby="ask-h" className="panel">
      <h2 id="ask-h">Ask</h2>
      <form onSubmit={submit} className={styles.askForm}>
        <label>
          Your question
          <textarea
            value={question}
            onChange={(e) => setQuestion(e.target.value)}
            rows={2}
            maxLength={2000}
            placeholder="How many people came to the front door last night?"
            data-testid="ask-input"
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) {
                e.preventDefault();
                e.currentTarget.form?.requestSubmit();
              }
            }}
          />
        </label>
        <div className="row">
          <button type="submit" disabled={busy || !question.trim()} data-testid="ask-submit">
            {busy ? "Answering…" : "Ask"}
          </button>
          {busy ? (
            <button type="button" className="secondary" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          ) : null}
        </div>
      </form>
      {error ? <p className="notice notice-error" role="alert">{error}</p> : null}
      <div aria-live="polite" aria-busy={busy} data-testid="ask-answer" className={styles.answer}>
        {text ? <p className={styles.answerText}>{text}</p> : busy ? <p className="muted">Looking through the history…</p> : null}
        {done ? (
          <p className="muted">
            Answer: {MODE[done.mode] ?? done.mode}
            {done.llm_error ? ` (${done.llm_error})` : ""}.
          </p>
        ) : null}
      </div>
      <SearchCitations citations={citations} />
    </section>
  );
}
