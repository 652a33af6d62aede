// The alerts, newest first: one button per alert (selects it).
import { when } from "@/lib/api";
import type { Alert } from "@/lib/review";
import styles from "@/styles/review.module.css";

const SEVERITY_BADGE: Record<string, string> = { critical: "badge-bad", high: "badge-bad", medium: "badge-warn" };

export default function ReviewList({
  items,
  selected,
  onSelect,
}: {
  items: Alert[];
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  return (
    <ul className={styles.list} aria-label="Alerts, newest first" data-testid="alert-list">
      {items.map((a) => {
        const on = a.id === selected;
        return (
          <li key={a.id} data-testid="alert-item" data-alert-id={a.id} className={on ? styles.selected : undefined}>
            <button type="button" id={`alert-${a.id}`} aria-current={on ? "true" : undefined} onClick={() => onSelect(a.id)}>
              <span className={styles.itemTop}>
                <strong>{a.label}</strong> <span className="muted">on</span> {a.camera_id}
                <span className={`badge ${SEVERITY_BADGE[a.severity] ?? ""}`}>{a.severity}</span>
              </span>
              <span className={styles.itemSummary}>{a.summary || "No summary yet."}</span>
              <span className={`muted ${styles.itemFoot}`}>
                <time dateTime={a.created_at}>{when(a.created_at)}</time> · {a.status === "open" ? "open" : a.status}
                {a.verdict ? ` · ${a.verdict === "true_positive" ? "true positive" : "false positive"}` : ""}
              </span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}
