// The zone editor: a camera's zones as polygons over its latest frame. Draw a new polygon by
// clicking points (or with the arrow keys and Space), close it with Enter, cancel with Escape,
// take back the last point with Backspace; drag a selected zone's vertices (or focus one and
// use the arrow keys), drag an edge's middle handle to add a vertex. Coordinates are
// normalised ([0, 0] top-left, [1, 1] bottom-right), as the scene API takes them.
import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent } from "react";
import {
  DEFAULT_SIZE,
  LiveFrame,
  svgPoints,
  type FrameSize,
  type Point,
  type SceneLine,
  type Zone,
} from "@/components/LiveCommon";
import s from "@/styles/live.module.css";

export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_POINTS = 64;

const clamp = (v: number) => Math.min(1, Math.max(0, Math.round(v * 10000) / 10000));

export function newZoneName(zones: Zone[]): string {
  const taken = new Set(zones.map((z) => z.name));
  for (let i = 1; ; i++) if (!taken.has(`zone-${i}`)) return `zone-${i}`;
}

export function ZoneCanvas({
  cameraId,
  alt,
  zones,
  lines,
  selected,
  onSelect,
  onChange,
  onCreate,
  drawing,
  setDrawing,
}: {
  cameraId: string;
  alt: string;
  zones: Zone[];
  lines: SceneLine[];
  selected: number | null;
  onSelect: (i: number | null) => void;
  onChange: (i: number, polygon: Point[]) => void;
  onCreate: (polygon: Point[]) => void;
  drawing: Point[] | null;
  setDrawing: (p: Point[] | null) => void;
}) {
  const svg = useRef<SVGSVGElement | null>(null);
  const [size, setSize] = useState<FrameSize>(DEFAULT_SIZE);
  const [shownWidth, setShownWidth] = useState(800);
  const [cursor, setCursor] = useState<Point>([0.5, 0.5]);
  const [hover, setHover] = useState<Point | null>(null);
  const [focused, setFocused] = useState(false);
  const drag = useRef<number | null>(null);
  const [status, setStatus] = useState("");

  useEffect(() => {
    const el = svg.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => setShownWidth(el.getBoundingClientRect().width || 800));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // Enter / Escape / Backspace while drawing, wherever the focus is (but not in a form field).
  useEffect(() => {
    if (drawing === null) return;
    const onKey = (e: globalThis.KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && t.closest("input, textarea, select, button, a")) return;
      if (e.key === "Enter") {
        e.preventDefault();
        if (drawing.length >= 3) {
          onCreate(drawing);
          setStatus(`Zone closed with ${drawing.length} points.`);
        } else setStatus("A zone needs at least 3 points.");
      } else if (e.key === "Escape") {
        e.preventDefault();
        setDrawing(null);
        setStatus("Drawing cancelled.");
      } else if (e.key === "Backspace") {
        e.preventDefault();
        setDrawing(drawing.slice(0, -1));
        setStatus(drawing.length > 1 ? `Point removed, ${drawing.length - 1} left.` : "No points left.");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [drawing, onCreate, setDrawing]);

  const unit = size.w / Math.max(1, shownWidth); // frame pixels per screen pixel
  const r = 7 * unit;

  const toPoint = (e: { clientX: number; clientY: number }): Point => {
    const rect = svg.current!.getBoundingClientRect();
    return [clamp((e.clientX - rect.left) / rect.width), clamp((e.clientY - rect.top) / rect.height)];
  };

  const addPoint = (p: Point) => {
    if (drawing === null) return;
    if (drawing.length >= MAX_POINTS) {
      setStatus(`A zone has at most ${MAX_POINTS} points.`);
      return;
    }
    setDrawing([...drawing, p]);
    setStatus(`Point ${drawing.length + 1} at ${Math.round(p[0] * 100)}%, ${Math.round(p[1] * 100)}%.`);
  };

  const onPointerDown = (e: PointerEvent<SVGSVGElement>) => {
    if (e.button !== 0) return;
    svg.current?.focus();
    const target = e.target as Element;
    const p = toPoint(e);
    if (drawing !== null) {
      addPoint(p);
      return;
    }
    const zone = selected !== null ? zones[selected] : undefined;
    const v = target.getAttribute("data-vertex");
    const m = target.getAttribute("data-mid");
    if (zone && selected !== null && v !== null) {
      drag.current = Number(v);
      svg.current?.setPointerCapture(e.pointerId);
      e.preventDefault();
      return;
    }
    if (zone && selected !== null && m !== null && zone.polygon.length < MAX_POINTS) {
      const at = Number(m) + 1;
      onChange(selected, [...zone.polygon.slice(0, at), p, ...zone.polygon.slice(at)]);
      drag.current = at;
      svg.current?.setPointerCapture(e.pointerId);
      e.preventDefault();
      return;
    }
    const z = target.getAttribute("data-zone");
    onSelect(z !== null ? Number(z) : null);
  };

  const onPointerMove = (e: PointerEvent<SVGSVGElement>) => {
    if (drawing !== null) {
      setHover(toPoint(e));
      return;
    }
    if (drag.current === null || selected === null) return;
    const zone = zones[selected];
    if (!zone) return;
    const p = toPoint(e);
    const i = drag.current;
    onChange(selected, zone.polygon.map((q, j) => (j === i ? p : q)));
  };

  const endDrag = (e: PointerEvent<SVGSVGElement>) => {
    if (drag.current !== null && svg.current?.hasPointerCapture(e.pointerId)) {
      svg.current.releasePointerCapture(e.pointerId);
    }
    drag.current = null;
  };

  const onSvgKey = (e: KeyboardEvent<SVGSVGElement>) => {
    const step = e.shiftKey ? 0.05 : 0.01;
    const moves: Record<string, Point> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    if (drawing !== null) {
      const d = moves[e.key];
      if (d) {
        e.preventDefault();
        setCursor(([x, y]) => [clamp(x + d[0]), clamp(y + d[1])]);
      } else if (e.key === " ") {
        e.preventDefault();
        addPoint(cursor);
      }
    } else if (e.key === "Escape" && selected !== null) {
      e.preventDefault();
      onSelect(null);
    }
  };

  const onVertexKey = (i: number) => (e: KeyboardEvent<SVGCircleElement>) => {
    if (selected === null) return;
    const zone = zones[selected];
    if (!zone) return;
    const step = e.shiftKey ? 0.05 : 0.005;
    const d: Point | undefined = (
      { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] } as Record<string, Point>
    )[e.key];
    if (d) {
      e.preventDefault();
      e.stopPropagation();
      onChange(
        selected,
        zone.polygon.map((q, j) => (j === i ? [clamp(q[0] + d[0]), clamp(q[1] + d[1])] : q)),
      );
    } else if ((e.key === "Delete" || e.key === "Backspace") && zone.polygon.length > 3) {
      e.preventDefault();
      e.stopPropagation();
      onChange(selected, zone.polygon.filter((_, j) => j !== i));
      setStatus(`Vertex ${i + 1} removed.`);
    }
  };

  const sel = selected !== null ? zones[selected] : undefined;
  const font = Math.max(12, Math.round(14 * unit));

  return (
    <div className={s.canvas}>
      <LiveFrame cameraId={cameraId} alt={alt} large periodMs={1000} onSize={setSize} />
      <svg
        ref={svg}
        className={`${s.editSvg} ${drawing !== null ? s.drawing : ""}`}
        viewBox={`0 0 ${size.w} ${size.h}`}
        preserveAspectRatio="none"
        tabIndex={0}
        role="application"
        aria-label={
          drawing !== null
            ? `Drawing a zone: ${drawing.length} points. Click to add a point, or move the cursor with the arrow keys and press Space. Enter closes the zone, Backspace removes the last point, Escape cancels.`
            : "Zones of the camera: click a zone to select it, then drag its vertices."
        }
        aria-describedby="zone-help"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
        onPointerLeave={() => setHover(null)}
        onKeyDown={onSvgKey}
        onFocus={() => setFocused(true)}
        onBlur={() => setFocused(false)}
      >
        {lines.map((l) => (
          <line
            key={`l-${l.name}`}
            className={s.sceneLine}
            x1={l.a[0] * size.w}
            y1={l.a[1] * size.h}
            x2={l.b[0] * size.w}
            y2={l.b[1] * size.h}
          />
        ))}
        {zones.map((z, i) => (
          <g key={i}>
            <polygon
              data-zone={i}
              className={i === selected ? s.zoneSelected : s.zoneEdit}
              points={svgPoints(z.polygon, size)}
            />
            {z.polygon[0] ? (
              <text
                className={s.zoneName}
                x={z.polygon[0][0] * size.w + 4 * unit}
                y={z.polygon[0][1] * size.h + font}
                fontSize={font}
                pointerEvents="none"
              >
                {z.name}
              </text>
            ) : null}
          </g>
        ))}
        {sel && selected !== null && drawing === null
          ? sel.polygon.map((p, i) => {
              const q = sel.polygon[(i + 1) % sel.polygon.length]!;
              return (
                <circle
                  key={`m-${i}`}
                  data-mid={i}
                  className={s.midHandle}
                  cx={((p[0] + q[0]) / 2) * size.w}
                  cy={((p[1] + q[1]) / 2) * size.h}
                  r={r * 0.6}
                >
                  <title>Drag to add a vertex here</title>
                </circle>
              );
            })
          : null}
        {sel && selected !== null && drawing === null
          ? sel.polygon.map((p, i) => (
              <circle
                key={`v-${i}`}
                data-vertex={i}
                className={s.vertex}
                cx={p[0] * size.w}
                cy={p[1] * size.h}
                r={r}
                tabIndex={0}
                role="button"
                aria-label={`Vertex ${i + 1} of ${sel.polygon.length} of zone ${sel.name}, at ${Math.round(p[0] * 100)}%, ${Math.round(p[1] * 100)}%. Arrow keys move it; Delete removes it.`}
                onKeyDown={onVertexKey(i)}
              />
            ))
          : null}
        {drawing !== null ? (
          <>
            {drawing.length > 0 ? (
              <polyline
                className={s.draft}
                points={svgPoints(hover ? [...drawing, hover] : drawing, size)}
                pointerEvents="none"
              />
            ) : null}
            {drawing.map((p, i) => (
              <circle key={`d-${i}`} className={s.draftVertex} cx={p[0] * size.w} cy={p[1] * size.h} r={r * 0.8} pointerEvents="none" />
            ))}
            {focused ? (
              <g pointerEvents="none" className={s.cursor}>
                <line x1={cursor[0] * size.w - 3 * r} y1={cursor[1] * size.h} x2={cursor[0] * size.w + 3 * r} y2={cursor[1] * size.h} />
                <line x1={cursor[0] * size.w} y1={cursor[1] * size.h - 3 * r} x2={cursor[0] * size.w} y2={cursor[1] * size.h + 3 * r} />
              </g>
            ) : null}
          </>
        ) : null}
      </svg>
      <p className={s.srOnly} role="status" aria-live="polite">
        {status}
      </p>
    </div>
  );
}
