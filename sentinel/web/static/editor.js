// The canvas editor: the frame with its boxes; draw, move, resize, relabel, delete, nudge,
// accept pre-labels, undo and redo. Coordinates are kept in frame pixels.

import { labelColor, sameBoxes } from "./common.js";

const MARGIN = 24; // display px around the frame: a box may be dragged past the edge (the API judges)
const HANDLE = 7; // display px: how near a corner a press grabs it
const MIN_DRAG = 3; // display px before a press becomes a drag

export class Editor {
  constructor(canvas, image, boxes, labels, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.image = image;
    this.boxes = boxes;
    this.labels = labels;
    this.label = labels[0] || "";
    this.selected = -1;
    this.invalid = new Set(); // boxes the API refused, drawn red until the next change
    this.undoStack = [];
    this.redoStack = [];
    this.drag = null;
    this.dirty = false; // changed since loaded or saved
    this.onChange = onChange;
    const avail = Math.max(320, Math.min(1280, (canvas.parentElement?.clientWidth || 960) - 2 * MARGIN));
    this.scale = Math.min(1, avail / image.naturalWidth);
    canvas.width = Math.round(image.naturalWidth * this.scale) + 2 * MARGIN;
    canvas.height = Math.round(image.naturalHeight * this.scale) + 2 * MARGIN;
    // The transform, for people with dev tools and for the browser test.
    canvas.dataset.scale = String(this.scale);
    canvas.dataset.margin = String(MARGIN);
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    this.draw();
  }

  get width() {
    return this.image.naturalWidth;
  }

  get height() {
    return this.image.naturalHeight;
  }

  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const cx = ((e.clientX - r.left) * this.canvas.width) / r.width;
    const cy = ((e.clientY - r.top) * this.canvas.height) / r.height;
    return { x: (cx - MARGIN) / this.scale, y: (cy - MARGIN) / this.scale };
  }

  snapshot() {
    return JSON.stringify({ boxes: this.boxes, selected: this.selected });
  }

  remember(before) {
    // Only a change of the boxes is a step (selecting one is not); undo restores the selection.
    if (sameBoxes(JSON.parse(before).boxes, this.boxes)) return;
    this.undoStack.push(before);
    if (this.undoStack.length > 200) this.undoStack.shift();
    this.redoStack = [];
    this.dirty = true;
    this.invalid.clear();
    this.changed();
  }

  restore(state) {
    const s = JSON.parse(state);
    this.boxes = s.boxes;
    this.selected = Math.min(s.selected, this.boxes.length - 1);
    this.invalid.clear();
  }

  undo() {
    if (!this.undoStack.length) return false;
    this.redoStack.push(this.snapshot());
    this.restore(this.undoStack.pop());
    this.dirty = true;
    this.changed();
    return true;
  }

  redo() {
    if (!this.redoStack.length) return false;
    this.undoStack.push(this.snapshot());
    this.restore(this.redoStack.pop());
    this.dirty = true;
    this.changed();
    return true;
  }

  /** Applies ``fn`` as one undoable step. */
  edit(fn) {
    const before = this.snapshot();
    fn();
    this.remember(before);
  }

  changed() {
    this.draw();
    this.onChange();
  }

  hit(p) {
    const tol = HANDLE / this.scale;
    const order = [];
    if (this.selected >= 0) order.push(this.selected);
    for (let i = this.boxes.length - 1; i >= 0; i--) if (i !== this.selected) order.push(i);
    for (const i of order) {
      const b = this.boxes[i];
      const corners = { nw: [b.x1, b.y1], ne: [b.x2, b.y1], sw: [b.x1, b.y2], se: [b.x2, b.y2] };
      for (const [name, [cx, cy]] of Object.entries(corners)) {
        if (Math.abs(p.x - cx) <= tol && Math.abs(p.y - cy) <= tol) return { index: i, corner: name };
      }
    }
    // Inside: the smallest box under the pointer (a small box on a large one stays reachable).
    let best = -1;
    let area = Infinity;
    this.boxes.forEach((b, i) => {
      if (p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2) {
        const a = (b.x2 - b.x1) * (b.y2 - b.y1);
        if (a < area) [best, area] = [i, a];
      }
    });
    return best >= 0 ? { index: best, corner: null } : null;
  }

  down(e) {
    if (e.button !== 0) return;
    this.canvas.focus();
    this.canvas.setPointerCapture(e.pointerId);
    const p = this.toImage(e);
    const h = this.hit(p);
    const before = this.snapshot();
    if (h) {
      this.selected = h.index;
      const orig = { ...this.boxes[h.index] };
      this.drag = { mode: h.corner ? "resize" : "move", corner: h.corner, start: p, orig, before };
    } else {
      this.drag = { mode: "draw", start: p, before, index: -1, sx: e.clientX, sy: e.clientY };
    }
    this.draw();
    this.onChange();
  }

  move(e) {
    const p = this.toImage(e);
    if (!this.drag) {
      const h = this.hit(p);
      this.canvas.style.cursor = !h ? "crosshair" : h.corner ? `${h.corner}-resize` : "move";
      return;
    }
    const d = this.drag;
    if (d.mode === "draw") {
      if (d.index < 0) {
        if (Math.hypot(e.clientX - d.sx, e.clientY - d.sy) < MIN_DRAG) return;
        this.boxes.push({ label: this.label, x1: d.start.x, y1: d.start.y, x2: p.x, y2: p.y, score: null, origin: "human", accepted: true });
        d.index = this.boxes.length - 1;
        this.selected = d.index;
      }
      const b = this.boxes[d.index];
      b.x1 = Math.min(d.start.x, p.x);
      b.x2 = Math.max(d.start.x, p.x);
      b.y1 = Math.min(d.start.y, p.y);
      b.y2 = Math.max(d.start.y, p.y);
    } else if (d.mode === "move") {
      const b = this.boxes[this.selected];
      const dx = p.x - d.start.x;
      const dy = p.y - d.start.y;
      Object.assign(b, { x1: d.orig.x1 + dx, x2: d.orig.x2 + dx, y1: d.orig.y1 + dy, y2: d.orig.y2 + dy });
      if (dx || dy) b.accepted = true;
    } else {
      const b = this.boxes[this.selected];
      const o = d.orig;
      const x = d.corner.endsWith("w") ? [p.x, o.x2] : [o.x1, p.x];
      const y = d.corner.startsWith("n") ? [p.y, o.y2] : [o.y1, p.y];
      Object.assign(b, { x1: Math.min(...x), x2: Math.max(...x), y1: Math.min(...y), y2: Math.max(...y), accepted: true });
    }
    this.draw();
  }

  up(e) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    if (d.mode === "draw") {
      const b = this.boxes[d.index];
      if (d.index < 0) {
        this.selected = -1; // a click on empty ground deselects
      } else if ((b.x2 - b.x1) * this.scale < MIN_DRAG || (b.y2 - b.y1) * this.scale < MIN_DRAG) {
        this.boxes.splice(d.index, 1);
        this.selected = -1;
      }
    }
    this.remember(d.before);
    this.draw();
    this.onChange();
  }

  select(i) {
    this.selected = i >= 0 && i < this.boxes.length ? i : -1;
    this.draw();
    this.onChange();
  }

  deleteSelected() {
    if (this.selected < 0) return false;
    this.edit(() => {
      this.boxes.splice(this.selected, 1);
      this.selected = -1;
      this.invalid.clear();
    });
    return true;
  }

  deleteAt(i) {
    this.edit(() => {
      this.boxes.splice(i, 1);
      this.selected = -1;
      this.invalid.clear();
    });
  }

  pickLabel(label) {
    this.label = label;
    if (this.selected >= 0 && this.boxes[this.selected].label !== label) {
      this.edit(() => Object.assign(this.boxes[this.selected], { label, accepted: true }));
    } else {
      this.onChange();
    }
  }

  nudge(dx, dy) {
    if (this.selected < 0) return false;
    this.edit(() => {
      const b = this.boxes[this.selected];
      Object.assign(b, { x1: b.x1 + dx, x2: b.x2 + dx, y1: b.y1 + dy, y2: b.y2 + dy, accepted: true });
    });
    return true;
  }

  accept(i) {
    if (i < 0 || this.boxes[i].accepted) return;
    this.edit(() => {
      this.boxes[i].accepted = true;
    });
  }

  acceptAll() {
    if (this.boxes.every((b) => b.accepted)) return;
    this.edit(() => this.boxes.forEach((b) => (b.accepted = true)));
  }

  draw() {
    const { ctx, canvas, scale } = this;
    const w = this.width * scale;
    const h = this.height * scale;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#20232a";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(this.image, MARGIN, MARGIN, w, h);
    ctx.strokeStyle = "#888";
    ctx.lineWidth = 1;
    ctx.strokeRect(MARGIN - 0.5, MARGIN - 0.5, w + 1, h + 1);
    ctx.font = "12px system-ui, sans-serif";
    this.boxes.forEach((b, i) => {
      const x = MARGIN + b.x1 * scale;
      const y = MARGIN + b.y1 * scale;
      const bw = (b.x2 - b.x1) * scale;
      const bh = (b.y2 - b.y1) * scale;
      const color = this.invalid.has(i) ? "#ff3030" : labelColor(b.label);
      ctx.setLineDash(b.accepted ? [] : [6, 4]);
      ctx.lineWidth = i === this.selected ? 3 : 2;
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, bw, bh);
      ctx.setLineDash([]);
      const tag = `${i + 1} ${b.label}${b.score != null && !b.accepted ? ` ${Math.round(b.score * 100)}%` : ""}`;
      const tw = ctx.measureText(tag).width + 6;
      ctx.fillStyle = color;
      ctx.fillRect(x, y - 16, tw, 16);
      ctx.fillStyle = "#000";
      ctx.fillText(tag, x + 3, y - 4);
      if (i === this.selected) {
        ctx.fillStyle = "#fff";
        for (const [cx, cy] of [[x, y], [x + bw, y], [x, y + bh], [x + bw, y + bh]]) {
          ctx.fillRect(cx - 4, cy - 4, 8, 8);
          ctx.strokeRect(cx - 4, cy - 4, 8, 8);
        }
      }
    });
  }
}
