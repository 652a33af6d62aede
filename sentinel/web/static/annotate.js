// Sentinel's annotation pages: queue, canvas editor, batch mode, review, sign-in. Plain modern
// JS modules, no build step: common.js talks to the JSON API, editor.js is the canvas.

import {
  $, API, SIGNIN, annotationVersion, api, boxErrors, el, fmtTime, frameUrl, itemLabels,
  labelColor, listOf, loadImage, pick, reason, say, showError, startingBoxes, wire,
} from "./common.js";
import { Editor } from "./editor.js";

// ---------------------------------------------------------------------------------------------
// Item page

const QUEUE_FILTER = "sentinel.annotate.queue"; // the queue page's last filter: n / p follow it

async function queueIds() {
  const query = new URLSearchParams(sessionStorage.getItem(QUEUE_FILTER) || "");
  query.set("limit", "200");
  const res = await api("GET", `/annotation/queue?${query}`);
  return res.ok ? listOf(res.data, "items").map((it) => String(it.id)) : [];
}

async function itemPage() {
  const id = document.body.dataset.itemId;
  const canvas = $("#canvas");
  const res = await api("GET", `/annotation/items/${encodeURIComponent(id)}`);
  if (!res.ok) {
    showError(res.status === 404 ? "This item does not exist, or its camera is not yours." : `Cannot load the item: ${reason(res)}`);
    canvas.hidden = true;
    return;
  }
  let item = res.data;
  $("#item-meta").textContent = [
    item.camera_id && `camera ${item.camera_id}`,
    item.frame_ts && fmtTime(item.frame_ts),
    item.status && `status ${item.status}`,
    Array.isArray(item.reasons) && item.reasons.length && `mined for ${item.reasons.join(", ")}`,
  ].filter(Boolean).join(" · ");
  const review = Array.isArray(item.reviews) ? item.reviews[0] : null; // newest first
  if (review && review.note) {
    $("#review-note").hidden = false;
    $("#review-note-text").textContent = `${review.decision || ""}: ${review.note}`;
  }
  let image;
  try {
    image = await loadImage(frameUrl(id));
  } catch (err) {
    showError(`The frame cannot be shown: ${err.message}`);
    return;
  }
  const boxes = startingBoxes(item);
  const labels = itemLabels(item, boxes);
  let version = annotationVersion(item);
  let leaveArmed = 0;
  const picker = $("#label-picker");
  const labelKeys = $("#label-keys");
  labels.forEach((l, i) => {
    picker.append(el("option", { value: l, text: i < 9 ? `${i + 1} · ${l}` : l }));
    if (i < 9) labelKeys.append(el("li", {}, el("kbd", { text: String(i + 1) }), ` ${l}`));
  });

  const boxList = $("#box-list");
  const editor = new Editor(canvas, image, boxes, labels, () => {
    renderList();
  });

  function renderList() {
    picker.value = editor.selected >= 0 ? editor.boxes[editor.selected].label : editor.label;
    boxList.replaceChildren(
      ...editor.boxes.map((b, i) => {
        const state = b.accepted ? "" : `, pre-label ${b.score != null ? Math.round(b.score * 100) + "%" : ""} to accept`;
        const name = `Box ${i + 1}: ${b.label}${state}`;
        const li = el("li", { class: i === editor.selected ? "selected" : "" });
        li.append(
          el("button", { type: "button", class: "box-select", "aria-pressed": String(i === editor.selected), onclick: () => { editor.select(i); canvas.focus(); }, text: name }),
        );
        if (!b.accepted) li.append(el("button", { type: "button", class: "quiet", "aria-label": `Accept box ${i + 1}`, onclick: () => editor.accept(i), text: "Accept" }));
        li.append(el("button", { type: "button", class: "quiet", "aria-label": `Delete box ${i + 1}`, onclick: () => editor.deleteAt(i), text: "Delete" }));
        return li;
      }),
    );
    $("#undo").disabled = !editor.undoStack.length;
    $("#redo").disabled = !editor.redoStack.length;
  }
  renderList();

  picker.addEventListener("change", () => {
    editor.pickLabel(picker.value);
    canvas.focus();
  });

  let order = [];
  queueIds().then((ids) => (order = ids));
  function neighbour(step) {
    const at = order.indexOf(String(id));
    if (at >= 0) return order[at + step];
    return step > 0 ? order.find((x) => x !== String(id)) : undefined;
  }
  function go(step) {
    const target = neighbour(step);
    if (!target) {
      say(step > 0 ? "This is the last item in the queue." : "This is the first item in the queue.");
      return;
    }
    if (editor.dirty && Date.now() - leaveArmed > 4000) {
      leaveArmed = Date.now();
      say(`Unsaved changes: press ${step > 0 ? "n" : "p"} again to leave without saving, or Enter to submit.`);
      return;
    }
    location.assign(`/annotate/items/${encodeURIComponent(target)}`);
  }

  let saving = false;
  async function submit() {
    if (saving) return;
    saving = true;
    showError("");
    say("Saving…");
    const body = { boxes: editor.boxes.map(wire), version };
    const put = await api("PUT", `/annotation/items/${encodeURIComponent(id)}/annotation`, body);
    saving = false;
    if (put.ok) {
      const saved = put.data || {};
      version = Number.isInteger(saved.version) ? saved.version : version + 1;
      editor.dirty = false;
      editor.boxes.forEach((b) => (b.accepted = true));
      editor.invalid.clear();
      editor.draw();
      renderList();
      say(`Saved ${editor.boxes.length} box${editor.boxes.length === 1 ? "" : "es"} (version ${version}). Press n for the next item.`);
      return;
    }
    say("");
    const refused = put.status === 422 ? boxErrors(put) : [];
    if (refused.length) {
      editor.invalid = new Set(refused.map((r) => r.index));
      editor.select(refused[0].index);
      showError(`Not saved: ${refused.map((r) => r.text).join("; ")}`);
    } else if (put.status === 422) showError(`Not saved: ${reason(put)}`);
    else if (put.status === 404) showError("Not saved: this item does not exist, or its camera is not yours.");
    else if (put.status === 409) showError(`Not saved: ${reason(put)}`);
    else showError(`Not saved (${put.status}): ${reason(put)}`);
  }

  $("#submit").addEventListener("click", submit);
  $("#undo").addEventListener("click", () => editor.undo());
  $("#redo").addEventListener("click", () => editor.redo());
  $("#accept-all").addEventListener("click", () => editor.acceptAll());
  $("#next-item").addEventListener("click", () => go(1));
  $("#prev-item").addEventListener("click", () => go(-1));

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (t instanceof HTMLButtonElement && (e.key === "Enter" || e.key === " ")) return;
    const mod = e.ctrlKey || e.metaKey;
    if (mod && (e.key === "z" || e.key === "Z")) {
      e.preventDefault();
      if (e.shiftKey) editor.redo();
      else editor.undo();
      return;
    }
    if (mod && (e.key === "y" || e.key === "Y")) {
      e.preventDefault();
      editor.redo();
      return;
    }
    if (mod || e.altKey) return;
    const step = e.shiftKey ? 10 : 1;
    const px = step / editor.scale >= 1 ? step : step / editor.scale; // at least one display px
    let handled = true;
    if (/^[1-9]$/.test(e.key)) {
      const label = labels[Number(e.key) - 1];
      if (label) editor.pickLabel(label);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      editor.deleteSelected();
    } else if (e.key === "Enter") {
      submit();
    } else if (e.key === "Escape") {
      editor.select(-1);
    } else if (e.key === "n") {
      go(1);
    } else if (e.key === "p") {
      go(-1);
    } else if (e.key === "a") {
      editor.accept(editor.selected);
    } else if (e.key === "A") {
      editor.acceptAll();
    } else if (e.key === "ArrowRight") {
      if (!editor.nudge(px, 0)) go(1);
    } else if (e.key === "ArrowLeft") {
      if (!editor.nudge(-px, 0)) go(-1);
    } else if (e.key === "ArrowUp") {
      editor.nudge(0, -px);
    } else if (e.key === "ArrowDown") {
      editor.nudge(0, px);
    } else if (e.key === "Tab" && t === canvas && editor.boxes.length) {
      const next = editor.selected + (e.shiftKey ? -1 : 1);
      if (next < 0 || next >= editor.boxes.length) {
        editor.select(-1); // past either end, Tab leaves the canvas as usual
        handled = false;
      } else {
        editor.select(next);
      }
    } else {
      handled = false;
    }
    if (handled) e.preventDefault();
  });

  window.addEventListener("beforeunload", (e) => {
    if (editor.dirty && Date.now() - leaveArmed > 4000) e.preventDefault();
  });
  canvas.focus();
  say(`${editor.boxes.length} box${editor.boxes.length === 1 ? "" : "es"} loaded. Draw, correct, then press Enter.`);
}

// ---------------------------------------------------------------------------------------------
// Queue page

async function queuePage() {
  const form = $("#queue-filter");
  const params = new URLSearchParams(location.search);
  if (params.has("camera_id")) form.camera_id.value = params.get("camera_id");
  if (params.has("status")) form.status.value = params.get("status");
  form.mine.checked = params.get("mine") === "true";
  const query = new URLSearchParams({ limit: "100" });
  if (form.camera_id.value) query.set("camera_id", form.camera_id.value);
  if (form.status.value) query.set("status", form.status.value);
  if (form.mine.checked) query.set("mine", "true");
  sessionStorage.setItem(QUEUE_FILTER, query.toString());
  const res = await api("GET", `/annotation/queue?${query}`);
  if (!res.ok) {
    showError(`Cannot load the queue: ${reason(res)}`);
    return;
  }
  const items = listOf(res.data, "items");
  $("#queue-empty").hidden = items.length > 0;
  $("#queue-rows").replaceChildren(
    ...items.map((it) =>
      el(
        "tr",
        {},
        el("td", {}, el("a", { href: `/annotate/items/${encodeURIComponent(it.id)}`, text: `Open ${it.id}` })),
        el("td", { text: it.camera_id ?? "" }),
        el("td", { text: fmtTime(it.frame_ts) }),
        el("td", { text: typeof it.score === "number" ? it.score.toFixed(3) : "" }),
        el("td", { text: (it.reasons || []).join(", ") }),
        el("td", { text: String(it.prelabel_count ?? (it.prelabels || []).length) }),
        el("td", { text: it.status ?? "" }),
      ),
    ),
  );
  say(`${items.length} item${items.length === 1 ? "" : "s"}.`);
}

// ---------------------------------------------------------------------------------------------
// Batch page: one crop per pre-label; accepted ones become the item's annotation

function drawCrop(canvas, image, b, size = 160) {
  const pad = 0.15;
  const bw = b.x2 - b.x1;
  const bh = b.y2 - b.y1;
  const sx = Math.max(0, b.x1 - bw * pad);
  const sy = Math.max(0, b.y1 - bh * pad);
  const sw = Math.min(image.naturalWidth, b.x2 + bw * pad) - sx;
  const sh = Math.min(image.naturalHeight, b.y2 + bh * pad) - sy;
  const k = size / Math.max(sw, sh, 1);
  canvas.width = Math.max(1, Math.round(sw * k));
  canvas.height = Math.max(1, Math.round(sh * k));
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = labelColor(b.label);
  ctx.lineWidth = 2;
  ctx.strokeRect((b.x1 - sx) * k, (b.y1 - sy) * k, bw * k, bh * k);
}

async function batchPage() {
  const res = await api("GET", "/annotation/queue?status=queued&limit=12");
  if (!res.ok) {
    showError(`Cannot load the queue: ${reason(res)}`);
    return;
  }
  const crops = []; // {item, index, box, decision, node}
  const items = [];
  for (const summary of listOf(res.data, "items")) {
    const got = await api("GET", `/annotation/items/${encodeURIComponent(summary.id)}`);
    if (!got.ok) continue;
    const item = got.data;
    const boxes = startingBoxes(item);
    if (!boxes.length || boxes.some((b) => b.origin !== "prelabel")) continue;
    let image;
    try {
      image = await loadImage(frameUrl(item.id));
    } catch {
      continue;
    }
    items.push({ item, boxes });
    boxes.forEach((box, index) => crops.push({ item, index, box, image, decision: null }));
  }
  const holder = $("#crops");
  $("#batch-empty").hidden = crops.length > 0;

  function setDecision(c, decision) {
    c.decision = decision;
    c.node.dataset.decision = decision || "";
    c.accept.setAttribute("aria-pressed", String(decision === "accept"));
    c.reject.setAttribute("aria-pressed", String(decision === "reject"));
  }

  crops.forEach((c, i) => {
    const canvas = el("canvas", { "aria-hidden": "true" });
    drawCrop(canvas, c.image, c.box);
    const name = `Crop ${i + 1}: ${c.box.label}${c.box.score != null ? ` ${Math.round(c.box.score * 100)}%` : ""}, item ${c.item.id}`;
    c.accept = el("button", { type: "button", "aria-pressed": "false", "aria-label": `Accept crop ${i + 1}`, text: "Accept", onclick: () => setDecision(c, "accept") });
    c.reject = el("button", { type: "button", "aria-pressed": "false", "aria-label": `Reject crop ${i + 1}`, text: "Reject", onclick: () => setDecision(c, "reject") });
    c.node = el(
      "figure",
      { class: "crop", role: "listitem", tabindex: "0", "aria-label": name },
      canvas,
      el("figcaption", { text: name }),
      el("div", { class: "crop-actions" }, c.accept, c.reject),
    );
    holder.append(c.node);
  });

  function focusAt(i) {
    if (crops.length) crops[Math.max(0, Math.min(crops.length - 1, i))].node.focus();
  }
  function perRow() {
    if (crops.length < 2) return 1;
    const top = crops[0].node.offsetTop;
    const n = crops.findIndex((c) => c.node.offsetTop !== top);
    return n < 0 ? crops.length : n;
  }

  let sending = false;
  async function submitPage() {
    if (sending) return;
    showError("");
    const done = items.filter(({ item }) => crops.filter((c) => c.item === item).every((c) => c.decision));
    if (!done.length) {
      say("Decide every crop of an item (accept or reject) before submitting it.");
      return;
    }
    sending = true;
    const failures = [];
    let saved = 0;
    for (const { item, boxes } of done) {
      const kept = boxes.filter((_, index) => crops.find((c) => c.item === item && c.index === index).decision === "accept");
      const put = await api("PUT", `/annotation/items/${encodeURIComponent(item.id)}/annotation`, { boxes: kept.map(wire), version: annotationVersion(item) });
      if (put.ok) {
        saved += 1;
        for (const c of crops.filter((x) => x.item === item)) {
          c.node.dataset.saved = "true";
          c.accept.disabled = true;
          c.reject.disabled = true;
        }
      } else {
        failures.push(`item ${item.id}: ${reason(put)}`);
      }
    }
    sending = false;
    const waiting = items.length - done.length;
    say(`Saved ${saved} item${saved === 1 ? "" : "s"}${waiting ? `; ${waiting} still need a decision on every crop` : ""}.`);
    if (failures.length) showError(`Not saved: ${failures.join("; ")}`);
  }

  $("#batch-submit").addEventListener("click", submitPage);
  $("#batch-accept-all").addEventListener("click", () => crops.forEach((c) => c.decision || setDecision(c, "accept")));
  holder.addEventListener("keydown", (e) => {
    const i = crops.findIndex((c) => c.node === document.activeElement);
    if (i < 0 || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key.toLowerCase();
    let handled = true;
    if (k === "a" || k === "y") {
      setDecision(crops[i], "accept");
      focusAt(i + 1);
    } else if (k === "r" || k === "x") {
      setDecision(crops[i], "reject");
      focusAt(i + 1);
    } else if (e.key === "ArrowRight") focusAt(i + 1);
    else if (e.key === "ArrowLeft") focusAt(i - 1);
    else if (e.key === "ArrowDown") focusAt(i + perRow());
    else if (e.key === "ArrowUp") focusAt(i - perRow());
    else if (e.key === "Enter") submitPage();
    else handled = false;
    if (handled) e.preventDefault();
  });
  focusAt(0);
  say(`${crops.length} crop${crops.length === 1 ? "" : "s"} from ${items.length} item${items.length === 1 ? "" : "s"}.`);
}

// ---------------------------------------------------------------------------------------------
// Review page

function drawPreview(canvas, image, boxes, maxWidth = 560) {
  const k = Math.min(1, maxWidth / image.naturalWidth);
  canvas.width = Math.round(image.naturalWidth * k);
  canvas.height = Math.round(image.naturalHeight * k);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  ctx.font = "12px system-ui, sans-serif";
  boxes.forEach((b, i) => {
    ctx.strokeStyle = labelColor(b.label);
    ctx.lineWidth = 2;
    ctx.strokeRect(b.x1 * k, b.y1 * k, (b.x2 - b.x1) * k, (b.y2 - b.y1) * k);
    ctx.fillStyle = labelColor(b.label);
    ctx.fillText(`${i + 1} ${b.label}`, b.x1 * k + 2, b.y1 * k > 14 ? b.y1 * k - 3 : b.y1 * k + 12);
  });
}

function share(v) {
  return typeof v === "number" ? v.toFixed(2) : "n/a";
}

/** Fills the annotators' table; returns their user names by subject (the reviews' "by"). */
async function showQuality() {
  const res = await api("GET", "/annotation/annotators");
  if (!res.ok) {
    showError(`Cannot load the annotators' quality: ${reason(res)}`);
    return new Map();
  }
  const names = new Map(listOf(res.data, "items").map((a) => [a.annotator, a.username || a.annotator]));
  $("#quality-rows").replaceChildren(
    ...listOf(res.data, "items").map((a) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", text: a.username || a.annotator }),
        ...[a.submitted, a.reviewed, a.accepted, a.returned, a.gold_items].map((n) => el("td", { text: String(n) })),
        ...[a.review_agreement, a.gold_f1, a.score].map((v) => el("td", { text: share(v) })),
      ),
    ),
  );
  return names;
}

async function reviewPage() {
  const names = await showQuality();
  const res = await api("GET", "/annotation/queue?status=submitted&limit=50");
  if (!res.ok) {
    showError(`Cannot load the work to review: ${reason(res)}`);
    return;
  }
  const holder = $("#reviews");
  const summaries = listOf(res.data, "items");
  $("#review-empty").hidden = summaries.length > 0;
  for (const summary of summaries) {
    const got = await api("GET", `/annotation/items/${encodeURIComponent(summary.id)}`);
    if (!got.ok) continue;
    const item = got.data;
    const ann = item.annotation || item.latest_annotation || { boxes: [] };
    const boxes = (ann.boxes || []).map(pick);
    const canvas = el("canvas", { role: "img", "aria-label": `Frame of item ${item.id} with ${boxes.length} annotated box${boxes.length === 1 ? "" : "es"}` });
    const noteId = `note-${item.id}`;
    const note = el("textarea", { id: noteId, rows: "2", maxlength: "2000" });
    const outcome = el("p", { class: "outcome", role: "status" });
    const accept = el("button", { type: "button", class: "primary", "aria-label": `Accept item ${item.id}`, text: "Accept" });
    const back = el("button", { type: "button", "aria-label": `Return item ${item.id}`, text: "Return with note" });
    const who = names.get(ann.annotator) || ann.annotator || "";
    const card = el(
      "article",
      { class: "review-card", "aria-label": `Item ${item.id}` },
      el("h2", {}, el("a", { href: `/annotate/items/${encodeURIComponent(item.id)}`, text: `Item ${item.id}` })),
      el("p", { class: "meta", text: [item.camera_id, fmtTime(item.frame_ts), who && `by ${who}`, `${boxes.length} box${boxes.length === 1 ? "" : "es"}`].filter(Boolean).join(" · ") }),
      canvas,
      el("ul", { class: "review-boxes" }, ...boxes.map((b, i) => el("li", { text: `${i + 1} ${b.label} (${Math.round(b.x1)}, ${Math.round(b.y1)}) – (${Math.round(b.x2)}, ${Math.round(b.y2)})` }))),
      el("label", { for: noteId, text: "Note (needed to return)" }),
      note,
      el("div", { class: "actions" }, accept, back),
      outcome,
    );
    holder.append(card);
    loadImage(frameUrl(item.id)).then((img) => drawPreview(canvas, img, boxes), () => (outcome.textContent = "The frame cannot be shown."));
    async function decide(decision) {
      if (decision === "return" && !note.value.trim()) {
        outcome.textContent = "Write a note saying what to fix before returning the work.";
        note.focus();
        return;
      }
      accept.disabled = back.disabled = true;
      const body = { decision, note: note.value.trim() || null, version: item.version };
      const r = await api("POST", `/annotation/items/${encodeURIComponent(item.id)}/review`, body);
      if (r.ok) {
        outcome.textContent = decision === "accept" ? "Accepted." : "Returned to the annotator.";
        card.dataset.decision = decision;
        note.disabled = true;
      } else {
        accept.disabled = back.disabled = false;
        outcome.textContent = `Not recorded: ${reason(r)}`;
      }
    }
    accept.addEventListener("click", () => decide("accept"));
    back.addEventListener("click", () => decide("return"));
  }
  say(`${summaries.length} item${summaries.length === 1 ? "" : "s"} to review.`);
}

// ---------------------------------------------------------------------------------------------
// Sign-in and sign-out

function signinPage() {
  const form = $("#signin-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("");
    const body = new URLSearchParams({ username: form.username.value, password: form.password.value });
    if (form.otp.value) body.set("otp", form.otp.value);
    let response;
    try {
      response = await fetch(`${API}/auth/session`, { method: "POST", body, credentials: "same-origin" });
    } catch (err) {
      showError(`The server cannot be reached (${err}).`);
      return;
    }
    if (response.ok) {
      location.assign(document.body.dataset.next || "/annotate");
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    showError(`Not signed in: ${reason({ status: response.status, data })}`);
  });
  form.username.focus();
}

function wireSignOut() {
  const button = $("#signout");
  if (!button) return;
  button.addEventListener("click", async () => {
    await api("POST", "/auth/logout");
    location.assign(SIGNIN);
  });
}

const PAGES = { item: itemPage, queue: queuePage, batch: batchPage, review: reviewPage, signin: signinPage };

wireSignOut();
const start = PAGES[document.body.dataset.page];
if (start) {
  Promise.resolve(start()).catch((err) => showError(`Something went wrong on this page: ${err.message || err}`));
}
