// The event timeline: one lane per event family on a time axis, each event a mark
// coloured by family; failures are larger red triangles with a "!" (shape and label, not
// only colour). Hover or focus shows kind and time; a click (or Enter) opens the event.
// Marks are one tab stop: the arrow keys move between them (a roving tabindex).

import { h, put, s } from "./dom.js";
import { localTime, utc } from "./format.js";

export const FAMILIES = [
  { key: "lifecycle", label: "Lifecycle", test: (k) => k === "Init" || k === "Leave" },
  { key: "attestation", label: "Attestation", test: (k) => k.includes("Attestation") },
  { key: "cryptkey", label: "Crypt key", test: (k) => k.includes("CryptKey") },
  { key: "pki", label: "PKI", test: (k) => k.includes("RotatePki") },
  { key: "upgrade", label: "Upgrade", test: (k) => k.includes("Upgrade") },
  { key: "bless", label: "Bless slot", test: (k) => k.startsWith("BlessSlot") },
  { key: "reconcile", label: "Reconcile", test: (k) => k === "Reconcile" },
  { key: "cloudflared", label: "cloudflared tunnel", short: "cloudflared", test: (k) => k === "ConfigureCloudflaredTunnel" },
  { key: "rekey", label: "Rekey", test: (k) => k.startsWith("Rekey") },
  { key: "ha", label: "HA", test: (k) => k.startsWith("Ha") },
];
const OTHER = { key: "other", label: "Other", test: () => true };

export function family(kind) {
  return FAMILIES.find((f) => f.test(kind)) || OTHER;
}

export function isFailure(kind) {
  return kind.endsWith("Failure") || kind === "HaError";
}

const LANE = 24;
const TOP = 8;
const AXIS = 28;

function ticks(from, to, width) {
  const span = to - from;
  const steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400];
  const wanted = Math.max(2, Math.floor(width / 110));
  const step = steps.find((st) => span / st <= wanted) || steps[steps.length - 1];
  const offset = new Date(from * 1000).getTimezoneOffset() * 60;
  const out = [];
  // Ticks on round local times (midnight, whole hours).
  let t = Math.ceil((from - offset) / step) * step + offset;
  for (; t <= to; t += step) out.push(t);
  return { out, step };
}

function tickLabel(t, step) {
  const d = new Date(t * 1000);
  if (step >= 86400) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  if (d.getHours() === 0 && d.getMinutes() === 0) return d.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  return time;
}

/**
 * Draw `events` ({t, n, k}) over [from, to] into `wrap`; onOpen(event) on click/Enter.
 * Returns the SVG element.
 */
export function drawTimeline(wrap, events, from, to, onOpen) {
  const width = Math.max(280, wrap.clientWidth || 800);
  const LEFT = width < 560 ? 100 : 132;
  const used = FAMILIES.slice();
  if (events.some((e) => family(e.k) === OTHER)) used.push(OTHER);
  const height = TOP + used.length * LANE + AXIS;
  const plot = width - LEFT - 12;
  const x = (t) => LEFT + ((t - from) / (to - from || 1)) * plot;
  const laneOf = new Map(used.map((f, i) => [f.key, i]));
  const svg = s("svg", {
    class: "timeline", width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
    "aria-label": `Event timeline, ${events.length} events, ${localTime(from)} to ${localTime(to)}`,
  });
  used.forEach((f, i) => {
    const y = TOP + i * LANE;
    svg.append(s("rect", { x: LEFT, y, width: plot, height: LANE, class: i % 2 ? "lane odd" : "lane" }));
    const name = width < 560 && f.short ? f.short : f.label;
    svg.append(s("text", { x: LEFT - 8, y: y + LANE / 2 + 4, class: `lane-label fam-${f.key}`, "text-anchor": "end" }, name));
  });
  const axisY = TOP + used.length * LANE;
  svg.append(s("line", { x1: LEFT, x2: LEFT + plot, y1: axisY, y2: axisY, class: "axis" }));
  const { out, step } = ticks(from, to, plot);
  for (const t of out) {
    const tx = x(t);
    svg.append(s("line", { x1: tx, x2: tx, y1: TOP, y2: axisY + 4, class: "grid" }));
    svg.append(s("text", { x: tx, y: axisY + 18, class: "tick", "text-anchor": "middle" }, tickLabel(t, step)));
  }
  svg.append(s("text", { x: LEFT - 8, y: axisY + 18, class: "tick axis-title", "text-anchor": "end" }, "Local time"));

  const tip = wrap.querySelector(".tip") || h("div", { class: "tip", role: "tooltip", id: "timeline-tip", hidden: true });
  const marks = [];
  const sorted = events.slice().sort((a, b) => a.t - b.t || a.n - b.n);
  for (const e of sorted) {
    if (e.t < from || e.t > to) continue;
    const f = family(e.k);
    const fail = isFailure(e.k);
    const cx = x(e.t);
    const cy = TOP + laneOf.get(f.key) * LANE + LANE / 2;
    const label = `${e.k}${fail ? " (failure)" : ""}, ${localTime(e.t)} (${utc(e.t)})`;
    const shape = fail
      ? s("g", { class: "shape" },
        s("path", { d: `M${cx} ${cy - 9} L${cx + 8} ${cy + 6} L${cx - 8} ${cy + 6} Z` }),
        s("text", { x: cx, y: cy + 4.5, "text-anchor": "middle", class: "bang" }, "!"))
      : s("circle", { cx, cy, r: 5, class: "shape" });
    const mark = s("g", {
      class: `mark fam-${f.key}${fail ? " failure" : ""}`, tabindex: "-1", role: "button",
      "aria-label": label, dataset: { eventT: e.t, eventN: e.n, kind: e.k },
    }, s("title", {}, label), shape);
    marks.push(mark);
    svg.append(mark);
  }
  if (marks.length) marks[marks.length - 1].setAttribute("tabindex", "0");

  const show = (mark) => {
    put(tip, mark.getAttribute("aria-label"));
    tip.hidden = false;
    const box = mark.getBoundingClientRect();
    const host = wrap.getBoundingClientRect();
    const left = Math.min(Math.max(0, box.left - host.left - 40), host.width - 260);
    tip.style.left = `${left}px`;
    tip.style.top = `${box.top - host.top + box.height + 6}px`;
  };
  const hide = () => { tip.hidden = true; };
  const open = (mark) => onOpen({ t: Number(mark.dataset.eventT), n: Number(mark.dataset.eventN), k: mark.dataset.kind });
  const markOf = (target) => target.closest && target.closest(".mark");
  svg.addEventListener("mouseover", (ev) => { const m = markOf(ev.target); if (m) show(m); });
  svg.addEventListener("mouseout", (ev) => { if (markOf(ev.target)) hide(); });
  svg.addEventListener("focusin", (ev) => { const m = markOf(ev.target); if (m) show(m); });
  svg.addEventListener("focusout", hide);
  svg.addEventListener("click", (ev) => { const m = markOf(ev.target); if (m) open(m); });
  svg.addEventListener("keydown", (ev) => {
    const m = markOf(ev.target);
    if (!m) return;
    const i = marks.indexOf(m);
    let next = null;
    if (ev.key === "ArrowRight" || ev.key === "ArrowDown") next = marks[Math.min(marks.length - 1, i + 1)];
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") next = marks[Math.max(0, i - 1)];
    else if (ev.key === "Home") next = marks[0];
    else if (ev.key === "End") next = marks[marks.length - 1];
    else if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(m); return; }
    if (next) {
      ev.preventDefault();
      m.setAttribute("tabindex", "-1");
      next.setAttribute("tabindex", "0");
      next.focus();
    }
  });
  put(wrap, svg, tip);
  return svg;
}

/** The legend: family colours and the failure shape, in words too. */
export function legend() {
  return h("ul", { class: "legend" },
    FAMILIES.map((f) => h("li", { class: `fam-${f.key}` }, h("span", { class: "dot", "aria-hidden": "true" }, "●"), " ", f.label)),
    h("li", { class: "failure" }, h("span", { class: "dot", "aria-hidden": "true" }, "▲"), " failure"));
}
