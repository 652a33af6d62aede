// Shared pieces of the hand-made SVG charts: the measured width (the viewBox is the element's
// own size, so text stays legible at any width), nice axis ticks, the legend.
import { useEffect, useRef, useState, type RefObject } from "react";
import s from "@/styles/system.module.css";

export const MARGIN = { left: 46, right: 12, top: 10, bottom: 26 };
export const PALETTE_SIZE = 8;

export interface Series {
  label: string;
  values: (number | null)[];
}

/** The element's width in CSS pixels, kept current with a ResizeObserver. */
export function useWidth<T extends HTMLElement>(initial = 600): [RefObject<T | null>, number] {
  const ref = useRef<T | null>(null);
  const [width, setWidth] = useState(initial);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => setWidth(Math.max(160, Math.floor(el.getBoundingClientRect().width)));
    measure();
    if (typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, width];
}

/** Axis ticks from 0 to a round maximum at or above `max` (about `count` steps). */
export function ticks(max: number, count = 4): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) out.push(+v.toPrecision(6));
  return out;
}

/** Which x positions get a label: as many as fit `plot` pixels without overlapping (labels
 * of 11 px text, about 6.5 px a character), evenly spread, never the same text twice in a row. */
export function labelled(labels: string[], plot: number): number[] {
  const n = labels.length;
  if (n <= 0) return [];
  if (n === 1) return [0];
  const longest = Math.max(...labels.map((l) => l.length));
  const every = longest * 6.5 + 18;
  const fit = Math.max(2, Math.floor(plot / every) + 1);
  const step = Math.max(1, Math.ceil((n - 1) / (fit - 1))); // whole steps: evenly spaced
  const out: number[] = [];
  for (let i = 0; i < n; i += step) {
    if (out.length && labels[out[out.length - 1]!] === labels[i]) continue;
    out.push(i);
  }
  return out;
}

export interface Placed {
  i: number;
  x: number;
  anchor: "start" | "middle" | "end";
}

/** The x labels to draw at positions `xs` between `left` and `right`: those `labelled` picks,
 * centred unless at an edge, less any that would overlap the one before. */
export function placeLabels(labels: string[], xs: number[], left: number, right: number): Placed[] {
  const out: Placed[] = [];
  let end = -Infinity;
  for (const i of labelled(labels, right - left)) {
    const w = (labels[i]?.length ?? 0) * 6.5;
    const x = xs[i] ?? 0;
    let anchor: Placed["anchor"] = "middle";
    let a = x - w / 2;
    if (a < left - MARGIN.left + 4) {
      anchor = "start";
      a = x;
    } else if (x + w / 2 > right + MARGIN.right) {
      anchor = "end";
      a = x - w;
    }
    if (a < end + 10) continue;
    out.push({ i, x, anchor });
    end = anchor === "start" ? x + w : anchor === "end" ? x : x + w / 2;
  }
  return out;
}

export function colour(i: number): string {
  return s[`c${i % PALETTE_SIZE}`] ?? "";
}

export function Legend({ labels }: { labels: string[] }) {
  if (labels.length <= 1) return null;
  return (
    <ul className={s.legend} aria-hidden="true">
      {labels.map((l, i) => (
        <li key={l}>
          <span className={`${s.swatch} ${colour(i)}`} />
          {l}
        </li>
      ))}
    </ul>
  );
}

export function stats(values: (number | null)[]): { latest: number | null; mean: number | null; max: number | null } {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (!nums.length) return { latest: null, mean: null, max: null };
  let latest: number | null = null;
  for (let i = values.length - 1; i >= 0; i--) {
    const v = values[i];
    if (typeof v === "number") {
      latest = v;
      break;
    }
  }
  return { latest, mean: nums.reduce((a, b) => a + b, 0) / nums.length, max: Math.max(...nums) };
}
