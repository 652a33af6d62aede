// A stacked bar chart over categories (hours): hand-made SVG with axes and labels. Accessible:
// role="img" with an aria-label stating each stack's total and the busiest category.
import { ticks, placeLabels, colour, Legend, MARGIN, useWidth } from "./ChartCommon";
import { short } from "@/lib/system";
import s from "@/styles/system.module.css";

export interface Stack {
  label: string;
  values: number[];
}

export interface BarsProps {
  name: string;
  title: string;
  unit: string;
  x: string[];
  xFull?: string[]; // the x labels in full, for the spoken summary (default: x)
  stacks: Stack[];
  height?: number;
}

export default function ChartBars({ name, title, unit, x, xFull, stacks, height = 200 }: BarsProps) {
  const xs = xFull ?? x;
  const [ref, width] = useWidth<HTMLDivElement>();
  const n = x.length;
  const sums = x.map((_, i) => stacks.reduce((a, st) => a + (st.values[i] ?? 0), 0));
  const yt = ticks(Math.max(0, ...sums));
  const ymax = yt[yt.length - 1] ?? 1;
  const pw = width - MARGIN.left - MARGIN.right;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const slot = n ? pw / n : pw;
  const bw = Math.max(1, slot * 0.75);
  const py = (v: number) => MARGIN.top + ph - (v / ymax) * ph;
  const base = MARGIN.top + ph;

  const total = sums.reduce((a, b) => a + b, 0);
  let peak = 0;
  sums.forEach((v, i) => {
    if (v > (sums[peak] ?? 0)) peak = i;
  });
  const parts = stacks.map((st) => `${st.label} ${short(st.values.reduce((a, b) => a + b, 0))}`).join(", ");
  const label = n
    ? `${title} (${unit}), ${n} bars from ${xs[0]} to ${xs[n - 1]}: ${short(total)} in all` +
      (stacks.length ? ` (${parts})` : "") +
      (total ? `; the most, ${short(sums[peak])}, at ${xs[peak]}.` : ".")
    : `${title}: no data.`;

  return (
    <figure className={s.chart} data-testid={`chart-${name}`}>
      <figcaption className={s.caption}>
        {title} <span className="muted">({unit})</span>
      </figcaption>
      <div ref={ref} className={s.plot}>
        <svg viewBox={`0 0 ${width} ${height}`} width="100%" height={height} role="img" aria-label={label}>
          {yt.map((t) => (
            <g key={t}>
              <line className={s.grid} x1={MARGIN.left} x2={width - MARGIN.right} y1={py(t)} y2={py(t)} />
              <text className={s.tick} x={MARGIN.left - 6} y={py(t)} textAnchor="end" dominantBaseline="middle">
                {short(t)}
              </text>
            </g>
          ))}
          {x.map((cat, i) => {
            let acc = 0;
            const x0 = MARGIN.left + i * slot + (slot - bw) / 2;
            return (
              <g key={`${cat}-${i}`}>
                {stacks.map((st, k) => {
                  const v = st.values[i] ?? 0;
                  if (v <= 0) return null;
                  const y1 = py(acc + v);
                  const y0 = py(acc);
                  acc += v;
                  return (
                    <rect key={st.label} className={`${s.bar} ${colour(k)}`} x={x0} y={y1} width={bw} height={Math.max(0.5, y0 - y1)}>
                      <title>{`${cat} · ${st.label}: ${v}`}</title>
                    </rect>
                  );
                })}
              </g>
            );
          })}
          <line className={s.axis} x1={MARGIN.left} x2={width - MARGIN.right} y1={base} y2={base} />
          {placeLabels(x, x.map((_, i) => MARGIN.left + i * slot + slot / 2), MARGIN.left, width - MARGIN.right).map((p) => (
            <text key={p.i} className={s.tick} x={p.x} y={height - 8} textAnchor={p.anchor}>
              {x[p.i]}
            </text>
          ))}
          {!total ? (
            <text className={s.empty} x={width / 2} y={MARGIN.top + ph / 2} textAnchor="middle">
              none in this window
            </text>
          ) : null}
        </svg>
      </div>
      <Legend labels={stacks.map((st) => st.label)} />
    </figure>
  );
}
