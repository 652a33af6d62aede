// An answer's citations as links (events and incidents to the review page, documents as text).
import Link from "next/link";
import { when } from "@/lib/api";
import { clipUrl, reviewHref, type Citation } from "@/lib/review";
import styles from "@/styles/search.module.css";

export default function SearchCitations({ citations }: { citations: Citation[] }) {
  if (!citations.length) return null;
  return (
    <>
      <h3>Sources</h3>
      <ol className={styles.citations} data-testid="citations">
        {citations.map((c) => (
          <li key={`${c.kind}-${c.id}-${c.n}`} value={c.n} data-testid="citation">
            {c.kind === "document" ? (
              <span>
                <strong>{c.document ?? "Document"}</strong>
                {c.section ? ` — ${c.section}` : ""}: <span className="muted">{c.text}</span>
              </span>
            ) : (
              <span>
                <Link href={reviewHref(c.camera_id, c.started_at)}>
                  {c.label ?? c.kind} on {c.camera_id ?? "?"}, {when(c.started_at)}
                </Link>{" "}
                (<a href={clipUrl(c.kind, c.id)}>clip</a>) <span className="muted">{c.text}</span>
              </span>
            )}
          </li>
        ))}
      </ol>
    </>
  );
}
