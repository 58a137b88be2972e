// edge-fer live page: polls /api/state once a second and redraws. Plain JavaScript, no framework, no build.
// Polling (not Server-Sent Events): each poll is a short request, so an open tab holds no server thread,
// and after a daemon restart the next poll simply succeeds (docs/live-page.md).
"use strict";

const POLL_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const COLORS = {
  angry: "#d64541", disgust: "#6b8e23", fear: "#8e44ad", happy: "#f0b429",
  sad: "#3b82c4", surprise: "#e67e22", neutral: "#7f8c8d",
};
const EXTRA = ["#16a085", "#c0392b", "#2c3e50", "#d35400", "#27ae60"];

let failures = 0;
let previewUp = false;

function color(label) {
  if (COLORS[label]) return COLORS[label];
  let h = 0;
  for (const c of String(label)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return EXTRA[h % EXTRA.length];
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function pct(p) { return p === null || p === undefined ? "" : (100 * p).toFixed(0) + "%"; }
function ms(v) { return v === null || v === undefined ? "" : Number(v).toFixed(2); }

function duration(s) {
  if (s === null || s === undefined) return "";
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(sec).padStart(2, "0")} s` : `${sec} s`;
}

function setBadge(id, text, kind) {
  const b = document.getElementById(id);
  b.textContent = text;
  b.className = "badge " + kind;
}

function renderFaces(state) {
  const box = document.getElementById("faces");
  box.replaceChildren();
  if (!state.faces.length) {
    box.append(el("p", "muted", "Nobody in view."));
    return;
  }
  const labels = state.labels.length ? state.labels : Object.keys(state.faces[0].scores || {});
  for (const f of state.faces) {
    const card = el("div", "face");
    card.dataset.trackId = f.track_id;
    const head = el("div", "face-head");
    const name = el("span", "face-label", f.label);
    name.style.color = color(f.label);
    head.append(name, el("span", "muted", `face #${f.track_id}` + (f.confidence != null ? ` · ${pct(f.confidence)}` : "")));
    card.append(head);
    for (const lab of labels) {
      const p = (f.scores || {})[lab] || 0;
      const row = el("div", "bar-row");
      const bar = el("div", "bar");
      const fill = el("span");
      fill.style.width = (100 * p).toFixed(1) + "%";
      fill.style.background = color(lab);
      bar.append(fill);
      row.append(el("span", null, lab), bar, el("span", "num", pct(p)));
      card.append(row);
    }
    box.append(card);
  }
}

function span(s) {
  return s >= 120 ? `${Math.round(s / 60)} min` : `${Math.max(1, Math.round(s))} s`;
}

function renderTimeline(state) {
  const box = document.getElementById("timeline");
  const segs = state.timeline.segments;
  // the last window_s seconds, or less when the history is shorter (a fresh start)
  const oldest = segs.length ? Math.min(...segs.map((s) => s.start)) : state.ts;
  const win = Math.max(10, Math.min(state.timeline.window_s, state.ts - oldest));
  document.getElementById("window").textContent = `(last ${span(win)})`;
  box.replaceChildren();
  if (!segs.length) {
    box.append(el("p", "muted", "No face yet."));
    return;
  }
  const t0 = state.ts - win;
  const byTrack = new Map();
  for (const s of segs) {
    if (!byTrack.has(s.track_id)) byTrack.set(s.track_id, []);
    byTrack.get(s.track_id).push(s);
  }
  const rows = [...byTrack.entries()]
    .sort((a, b) => Math.max(...b[1].map((s) => s.start)) - Math.max(...a[1].map((s) => s.start)))
    .slice(0, 12);
  const seen = new Set();
  for (const [tid, list] of rows) {
    const row = el("div", "tl-row");
    row.append(el("span", "muted", "#" + tid));
    const lane = el("div", "tl-track");
    for (const s of list) {
      const a = Math.max(s.start, t0), b = s.end === null ? state.ts : s.end;
      if (b < t0) continue;
      const seg = el("span", "tl-seg");
      seg.style.left = (100 * (a - t0) / win).toFixed(2) + "%";
      seg.style.width = (100 * Math.max(0, b - a) / win).toFixed(2) + "%";
      seg.style.background = color(s.label);
      seg.title = `#${tid} ${s.label}: ${new Date(s.start * 1000).toLocaleTimeString()}` +
        (s.end === null ? " until now" : ` to ${new Date(s.end * 1000).toLocaleTimeString()}`);
      lane.append(seg);
      seen.add(s.label);
    }
    row.append(lane);
    box.append(row);
  }
  const axis = el("div", "tl-axis");
  axis.append(el("span", null, `-${span(win)}`), el("span", null, "now"));
  box.append(axis);
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const lab of state.labels.length ? state.labels : [...seen]) {
    const item = el("span");
    const sw = el("span", "swatch");
    sw.style.background = color(lab);
    item.append(sw, document.createTextNode(lab));
    legend.append(item);
  }
}

function table(id, head, rows) {
  const t = document.getElementById(id);
  t.replaceChildren();
  if (head) {
    const tr = el("tr");
    head.forEach((h, i) => tr.append(el("th", i ? "num" : null, h)));
    t.append(tr);
  }
  for (const r of rows) {
    const tr = el("tr");
    r.forEach((v, i) => tr.append(el(i === 0 ? "th" : "td", i && head ? "num" : null, v)));
    t.append(tr);
  }
}

function renderHealth(state) {
  const h = state.health;
  setBadge("health", h.ok ? "healthy" : String(h.status || "no status"), h.ok ? "ok" : "bad");
  const fps = h.fps !== undefined ? Number(h.fps).toFixed(1) : "";
  table("stats", null, [
    ["frames/s", fps],
    ["frames", h.frames],
    ["faces tracked now", h.tracks],
    ["uptime", duration(h.uptime_s)],
    ["dropped frames", h.dropped_frames],
    ["unreadable frames", h.bad_frames],
    ["dropped events", h.dropped_events],
    ["events waiting", h.queued_events],
    ["errors", h.errors],
    ["model", h.model],
    ["detector", h.detector],
    ["source", h.source],
  ]);
  const stages = h.stages || {};
  table("stages", ["stage", "p50", "p90", "p99", "max"],
    Object.entries(stages).map(([name, q]) => [name, ms(q.p50_ms), ms(q.p90_ms), ms(q.p99_ms), ms(q.max_ms)]));
  table("sinks", ["sink", "sent", "dropped", "errors", "state"],
    Object.entries(state.sinks).map(([name, s]) => [
      name, s.sent, s.dropped, s.errors,
      s.connected === undefined ? "" : s.stalled ? "stalled" : s.connected ? "connected" : "disconnected",
    ]));
}

function renderPreview(state) {
  const sec = document.getElementById("preview");
  const off = document.getElementById("preview-off");
  let img = sec.querySelector("img");
  if (!state.preview.enabled) {
    off.hidden = false;
    if (img) img.remove();
    previewUp = false;
    return;
  }
  off.hidden = true;
  if (!img) {
    img = el("img");
    img.alt = "live preview";
    img.addEventListener("error", () => { previewUp = false; });
    sec.append(img);
  }
  if (!previewUp) {  // first time, or after the daemon came back: open the stream again
    previewUp = true;
    img.src = state.preview.url + "?t=" + Date.now();
  }
}

function render(state) {
  renderFaces(state);
  renderTimeline(state);
  renderHealth(state);
  renderPreview(state);
  document.getElementById("clock").textContent = new Date(state.ts * 1000).toLocaleTimeString();
}

async function poll() {
  let delay = POLL_MS;
  try {
    const r = await fetch("/api/state", { cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) {
      setBadge("conn", "token required: open /?token=…", "bad");
      delay = MAX_BACKOFF_MS;
    } else if (!r.ok) {
      throw new Error("HTTP " + r.status);
    } else {
      render(await r.json());
      failures = 0;
      setBadge("conn", "live", "ok");
    }
  } catch (e) {
    failures += 1;
    previewUp = false;
    setBadge("conn", "reconnecting…", "warn");
    setBadge("health", "unknown", "off");
    delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(failures, 3));
  }
  setTimeout(poll, delay);
}

poll();
