// A line (or area) chart over time: hand-made SVG, axes with labels, one line per series.
// Accessible: role="img" with an aria-label that states each series' latest, mean and peak.
import { ticks, placeLabels, colour, Legend, MARGIN, stats, useWidth, type Series } from "./ChartCommon";
import { short } from "@/lib/system";
import s from "@/styles/system.module.css";

export interface LineProps {
  name: string;
  title: string;
  unit: string;
  x: string[]; // labels of the x positions (already formatted)
  series: Series[];
  area?: boolean;
  height?: number;
}

export default function ChartLine({ name, title, unit, x, series, area = false, height = 200 }: LineProps) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const n = x.length;
  const all = series.flatMap((se) => se.values).filter((v): v is number => typeof v === "number");
  const yt = ticks(all.length ? Math.max(...all) : 0);
  const ymax = yt[yt.length - 1] ?? 1;
  const pw = width - MARGIN.left - MARGIN.right;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const px = (i: number) => MARGIN.left + (n <= 1 ? pw / 2 : (i * pw) / (n - 1));
  const py = (v: number) => MARGIN.top + ph - (v / ymax) * ph;
  const base = MARGIN.top + ph;

  const summary = series.length
    ? series
        .map((se) => {
          const st = stats(se.values);
          return st.latest === null
            ? `${se.label}: no data`
            : `${se.label}: latest ${short(st.latest)}, mean ${short(st.mean)}, peak ${short(st.max)}`;
        })
        .join("; ")
    : "no data";
  const range = n ? `${n} points from ${x[0]} to ${x[n - 1]}` : "no points";
  const label = `${title} (${unit}), ${range}. ${summary}.`;

  // Runs of consecutive non-null values: a gap (null) breaks the line.
  const runs = (values: (number | null)[]) => {
    const out: [number, number][][] = [];
    let cur: [number, number][] = [];
    values.forEach((v, i) => {
      if (typeof v === "number") cur.push([px(i), py(v)]);
      else if (cur.length) {
        out.push(cur);
        cur = [];
      }
    });
    if (cur.length) out.push(cur);
    return out;
  };

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
          <line className={s.axis} x1={MARGIN.left} x2={width - MARGIN.right} y1={base} y2={base} />
          {placeLabels(x, x.map((_, i) => px(i)), MARGIN.left, width - MARGIN.right).map((p) => (
            <text key={p.i} className={s.tick} x={p.x} y={height - 8} textAnchor={p.anchor}>
              {x[p.i]}
            </text>
          ))}
          {series.map((se, k) =>
            runs(se.values).map((run, j) => {
              const d = run.map(([a, b], q) => `${q ? "L" : "M"}${a.toFixed(1)},${b.toFixed(1)}`).join("");
              const first = run[0]!;
              const last = run[run.length - 1]!;
              return (
                <g key={`${k}-${j}`} className={colour(k)}>
                  {area ? <path className={s.area} d={`${d}L${last[0].toFixed(1)},${base}L${first[0].toFixed(1)},${base}Z`} /> : null}
                  {run.length === 1 ? <circle className={s.dot} cx={first[0]} cy={first[1]} r={2.5} /> : <path className={s.line} d={d} />}
                </g>
              );
            }),
          )}
          {!all.length ? (
            <text className={s.empty} x={width / 2} y={MARGIN.top + ph / 2} textAnchor="middle">
              no data yet
            </text>
          ) : null}
        </svg>
      </div>
      <Legend labels={series.map((se) => se.label)} />
    </figure>
  );
}
