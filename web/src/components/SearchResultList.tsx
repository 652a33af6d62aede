// Search hits as thumbnails with score and snippet, each leading to the review page.
import Link from "next/link";
import { useState } from "react";
import { when } from "@/lib/api";
import { clipUrl, reviewHref, type SearchHit } from "@/lib/review";
import styles from "@/styles/search.module.css";

function Thumb({ hit }: { hit: SearchHit }) {
  const [ok, setOk] = useState(true);
  if (!hit.snapshot_url || !ok) return <div className={styles.noThumb}>No snapshot</div>;
  return (
    <img
      src={hit.snapshot_url}
      alt={`Snapshot: ${hit.label} on ${hit.camera_id}, ${when(hit.started_at)}`}
      loading="lazy"
      width={320}
      height={180}
      onError={() => setOk(false)}
    />
  );
}

export default function SearchResultList({
  items,
  onSimilar,
}: {
  items: SearchHit[];
  onSimilar: (hit: SearchHit) => void;
}) {
  return (
    <ul className={styles.results} aria-label="Results, best first">
      {items.map((h) => (
        <li key={`${h.kind}-${h.id}`} className={styles.card} data-testid="search-result" data-kind={h.kind} data-id={h.id}>
          <Link href={reviewHref(h.camera_id, h.started_at)} className={styles.thumbLink} aria-label={`Review ${h.label} on ${h.camera_id} around ${when(h.started_at)}`}>
            <Thumb hit={h} />
          </Link>
          <div className={styles.cardBody}>
            <p className={styles.cardTitle}>
              <Link href={reviewHref(h.camera_id, h.started_at)}>
                {h.label || h.kind} on {h.camera_id}
              </Link>{" "}
              <span className="badge" title="Similarity to the query (higher is closer)">
                score {h.score.toFixed(2)}
              </span>
            </p>
            <p className="muted">
              {h.kind === "incident" ? "Incident" : "Event"}, <time dateTime={h.started_at}>{when(h.started_at)}</time>
            </p>
            <p className={styles.snippet}>{h.snippet}</p>
            <p className="row">
              <a href={clipUrl(h.kind, h.id)}>Clip</a>
              <button type="button" className="secondary" onClick={() => onSimilar(h)} data-testid="more-like-this" aria-label={`More like this ${h.label} on ${h.camera_id}`}>
                More like this
              </button>
            </p>
          </div>
        </li>
      ))}
    </ul>
  );
}
