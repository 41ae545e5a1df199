// The fleet page: every connector of the account from one call (the fleet summary), with
// counts, a text filter, sorting by any column and pages of 100 rows (a 10,000-connector
// fleet draws 100 rows, not 10,000). Live: what changed since the last answer is merged.

import { Api } from "./api.js";
import { $, h, put } from "./dom.js";
import { duration, percent, timeEl } from "./format.js";
import { Live } from "./live.js";

const PAGE = 100;
const DAY = 86400;
/** With no snapshot interval known yet: the agent's default interval, 60 s. */
export const DEFAULT_INTERVAL = 60;
export const STALE_FACTOR = 3;
const FULL_REFRESH_MS = 60000;
const HIGH = 0.9;

/** Seconds after which a connector without a heartbeat is stale (see README). */
export function staleAfter(c) {
  const interval = c.snapshot && c.snapshot.interval > 0 ? c.snapshot.interval : DEFAULT_INTERVAL;
  return STALE_FACTOR * interval;
}

function derive(c, now) {
  const heartbeat = c.last_heartbeat ? Date.parse(c.last_heartbeat) / 1000 : null;
  const threshold = staleAfter(c);
  const stale = heartbeat !== null && now - heartbeat > threshold;
  const failure = c.failure;
  const failedRecently = Boolean(failure && now - failure.t <= DAY);
  const snap = c.snapshot;
  const tunnelsDown = snap && snap.tunnels ? snap.tunnels.total - snap.tunnels.up : 0;
  const high = snap && [snap.cpu, snap.memory, snap.disk && snap.disk.used].some((v) => v !== null && v >= HIGH);
  let status = "ok";
  if (heartbeat === null) status = "never";
  else if (stale) status = "stale";
  else if (failedRecently) status = "failed";
  else if (tunnelsDown > 0 || high) status = "degraded";
  return { c, heartbeat, threshold, stale, failedRecently, tunnelsDown, status };
}

/** What the text filter matches (computed once per answer about the connector). */
function searchText(c) {
  const snap = c.snapshot;
  return [c.notes, c.id, c.device.serial_number, c.device.id, c.device.type,
    c.last_seen_version, c.failure && c.failure.k, snap && snap.disk && snap.disk.mount]
    .filter(Boolean).join("\n").toLowerCase();
}

const STATUS = {
  stale: { rank: 0, label: "Stale", icon: "◌" },
  failed: { rank: 1, label: "Failure", icon: "▲" },
  degraded: { rank: 2, label: "Degraded", icon: "◆" },
  never: { rank: 3, label: "No data", icon: "○" },
  ok: { rank: 4, label: "OK", icon: "●" },
};

const nullLast = (v) => (v === null || v === undefined ? -Infinity : v);

const COLUMNS = [
  { key: "status", label: "Status", sort: (r) => -STATUS[r.status].rank },
  { key: "site", label: "Site", sort: (r) => (r.c.notes || r.c.id).toLowerCase() },
  { key: "device", label: "Device", sort: (r) => `${r.c.device.type} ${r.c.device.serial_number || r.c.device.id}` },
  { key: "activated", label: "Activated", sort: (r) => (r.c.activated ? 1 : 0) },
  { key: "heartbeat", label: "Heartbeat", sort: (r) => nullLast(r.heartbeat) },
  { key: "version", label: "Version", sort: (r) => r.c.last_seen_version || "" },
  { key: "cpu", label: "CPU", sort: (r) => nullLast(r.c.snapshot && r.c.snapshot.cpu) },
  { key: "memory", label: "Memory", sort: (r) => nullLast(r.c.snapshot && r.c.snapshot.memory) },
  { key: "disk", label: "Fullest disk", sort: (r) => nullLast(r.c.snapshot && r.c.snapshot.disk && r.c.snapshot.disk.used) },
  { key: "tunnels", label: "Tunnels", sort: (r) => (r.c.snapshot && r.c.snapshot.tunnels ? r.c.snapshot.tunnels.up - r.c.snapshot.tunnels.total : -Infinity) },
  { key: "failure", label: "Last failure", sort: (r) => nullLast(r.c.failure && r.c.failure.t) },
];

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function usage(value, label) {
  if (value === null || value === undefined) return h("span", { class: "muted" }, "–");
  const high = value >= HIGH;
  return h("span", { class: high ? "usage high" : "usage", title: `${label} ${percent(value, 1)}` },
    h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: `fill w${Math.round(value * 20) * 5}` })),
    high ? "! " : "", percent(value));
}

function cells(r, now) {
  const c = r.c;
  const snap = c.snapshot;
  const st = STATUS[r.status];
  const site = c.notes || "(no notes)";
  return {
    status: h("span", { class: `status status-${r.status}` }, h("span", { class: "icon", "aria-hidden": "true" }, st.icon), " ", st.label),
    site: [h("a", { href: `#/connectors/${encodeURIComponent(c.id)}`, class: "site" }, site),
      h("span", { class: "sub mono" }, c.id)],
    device: [h("span", {}, c.device.type), h("span", { class: "sub mono" }, c.device.serial_number || c.device.id)],
    activated: c.activated ? "yes" : h("span", { class: "muted" }, "no"),
    heartbeat: r.heartbeat === null
      ? h("span", { class: "muted" }, "never")
      : [timeEl(r.heartbeat, { relativeTo: now }),
        r.stale ? h("span", { class: "badge stale", title: `No heartbeat for more than ${duration(r.threshold)} (3 × its snapshot interval)` }, "◌ stale") : null],
    version: c.last_seen_version || h("span", { class: "muted" }, "–"),
    cpu: usage(snap && snap.cpu, "CPU"),
    memory: usage(snap && snap.memory, "Memory in use"),
    disk: snap && snap.disk
      ? [usage(snap.disk.used, `Disk ${snap.disk.mount}`), h("span", { class: "sub mono" }, snap.disk.mount)]
      : h("span", { class: "muted" }, "–"),
    tunnels: snap && snap.tunnels
      ? h("span", { class: r.tunnelsDown ? "tunnels down" : "tunnels" },
        `${snap.tunnels.up}/${snap.tunnels.total}`,
        r.tunnelsDown ? ` (${r.tunnelsDown} down)` : "",
        snap.tunnels.degraded ? ` · ${snap.tunnels.degraded} degraded` : "")
      : h("span", { class: "muted" }, "–"),
    failure: c.failure
      ? h("span", { class: r.failedRecently ? "failure recent" : "failure" },
        h("span", { class: "icon", "aria-hidden": "true" }, "▲"), " ", c.failure.k, " ",
        h("span", { class: "sub" }, timeEl(c.failure.t, { relativeTo: now })))
      : h("span", { class: "muted" }, "none"),
  };
}

export function renderFleet(main, ctx, params) {
  const { api } = ctx;
  const accountId = ctx.account.id;
  const state = {
    byId: new Map(),
    rows: [],
    sort: params.get("sort") || "status",
    dir: params.get("dir") || (params.get("sort") ? "asc" : "desc"),
    filter: params.get("q") || "",
    only: params.get("only") || "all",
    page: 0,
    asOf: null,
    loadedAt: 0,
  };

  const counts = h("div", { class: "counts", role: "group", "aria-label": "Fleet counts (select to filter)" });
  const filter = h("input", {
    type: "search", id: "fleet-filter", name: "q", value: state.filter, autocomplete: "off",
    placeholder: "site, serial, id, version, failure…",
  });
  const shown = h("p", { class: "shown", role: "status", "aria-live": "polite" });
  const thead = h("thead");
  const tbody = h("tbody");
  const table = h("table", { class: "fleet", "aria-describedby": "fleet-shown" }, h("caption", { class: "visually-hidden" }, "Connectors"), thead, tbody);
  shown.id = "fleet-shown";
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  put(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Fleet"),
      h("p", { class: "help" }, "Stale: no heartbeat for 3 × the connector's snapshot interval (the gap between its two latest snapshots; 60 s until it has two). Times are in your timezone; hover for UTC.")),
    counts,
    h("div", { class: "toolbar" }, h("label", { for: "fleet-filter" }, "Filter"), filter),
    shown,
    h("div", { class: "table-wrap" }, table),
    pager);
  document.title = `Fleet · ${ctx.account.name} · ctel`;

  function saveUrl() {
    const q = new URLSearchParams();
    if (state.sort !== "status" || state.dir !== "desc") { q.set("sort", state.sort); q.set("dir", state.dir); }
    if (state.filter) q.set("q", state.filter);
    if (state.only !== "all") q.set("only", state.only);
    const text = q.toString();
    history.replaceState(null, "", `#/${text ? `?${text}` : ""}`);
  }

  // The header and the counts are built once and updated in place, so that live updates
  // never take the keyboard focus away from them.
  const sortButtons = new Map();
  put(thead, h("tr", {}, COLUMNS.map((col) => {
    const button = h("button", {
      type: "button", class: "sort", dataset: { sort: col.key },
      onclick: () => {
        if (state.sort === col.key) state.dir = state.dir === "asc" ? "desc" : "asc";
        else { state.sort = col.key; state.dir = col.key === "status" ? "desc" : "asc"; }
        state.page = 0;
        saveUrl();
        draw();
      },
    }, col.label, h("span", { class: "arrow", "aria-hidden": "true" }));
    sortButtons.set(col.key, button);
    return h("th", { scope: "col", class: `col-${col.key}` }, button);
  })));

  function header() {
    for (const [key, button] of sortButtons) {
      const active = state.sort === key;
      button.parentElement.setAttribute("aria-sort", active ? (state.dir === "asc" ? "ascending" : "descending") : "none");
      put(button.lastChild, active ? (state.dir === "asc" ? " ▲" : " ▼") : " ↕");
    }
  }

  const countButtons = new Map();
  for (const [only, label] of [["all", "connectors"], ["stale", "stale"], ["failed", "with failures in the last 24 h"]]) {
    const button = h("button", {
      type: "button", class: "count", dataset: { count: only },
      onclick: () => {
        state.only = state.only === only && only !== "all" ? "all" : only;
        state.page = 0;
        saveUrl();
        draw();
      },
    }, h("span", { class: "value" }), h("span", { class: "label" }, label));
    countButtons.set(only, button);
    counts.append(button);
  }

  function drawCounts() {
    let stale = 0;
    let failing = 0;
    for (const r of state.rows) {
      if (r.stale) stale += 1;
      if (r.failedRecently) failing += 1;
    }
    const values = { all: state.rows.length, stale, failed: failing };
    for (const [only, button] of countButtons) {
      const value = values[only];
      button.className = `count ${only === "all" ? "total" : value ? "bad" : "good"}`;
      button.setAttribute("aria-pressed", state.only === only ? "true" : "false");
      put(button.firstChild, value.toLocaleString());
    }
  }

  function visible() {
    const needle = state.filter.trim().toLowerCase();
    let rows = state.rows;
    if (state.only === "stale") rows = rows.filter((r) => r.stale);
    else if (state.only === "failed") rows = rows.filter((r) => r.failedRecently);
    if (needle) rows = rows.filter((r) => r.text.includes(needle) || r.status.includes(needle));
    const col = COLUMNS.find((c) => c.key === state.sort) || COLUMNS[0];
    const sign = state.dir === "asc" ? 1 : -1;
    const keyed = rows.map((r) => [col.sort(r), (r.c.notes || r.c.id).toLowerCase(), r]);
    keyed.sort((a, b) => sign * compare(a[0], b[0]) || compare(a[1], b[1]));
    return keyed.map((k) => k[2]);
  }

  function drawRows(rows, now) {
    const focused = document.activeElement;
    const focusId = focused && tbody.contains(focused) ? focused.closest("tr").dataset.connectorId : null;
    const existing = new Map(Array.from(tbody.rows, (tr) => [tr.dataset.connectorId, tr]));
    const next = rows.map((r) => {
      const parts = cells(r, now);
      const tr = existing.get(r.c.id) || h("tr", { dataset: { connectorId: r.c.id } });
      tr.className = `row-${r.status}`;
      put(tr, COLUMNS.map((col) => h(col.key === "site" ? "th" : "td", {
        class: `col-${col.key}`, "data-label": col.label, ...(col.key === "site" ? { scope: "row" } : {}),
      }, h("div", { class: "cell" }, parts[col.key]))));
      return tr;
    });
    tbody.replaceChildren(...next);
    if (focusId) {
      const again = tbody.querySelector(`tr[data-connector-id="${CSS.escape(focusId)}"] a`);
      if (again) again.focus();
    }
  }

  function drawPager(total) {
    const pages = Math.max(1, Math.ceil(total / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const go = (p) => () => { state.page = p; draw(); table.scrollIntoView({ block: "start" }); };
    put(pager,
      h("button", { type: "button", disabled: state.page === 0, onclick: go(state.page - 1) }, "← Previous"),
      h("span", {}, `Page ${state.page + 1} of ${pages}`),
      h("button", { type: "button", disabled: state.page >= pages - 1, onclick: go(state.page + 1) }, "Next →"));
    pager.hidden = pages === 1;
  }

  function draw() {
    const now = ctx.now();
    for (const r of state.rows) Object.assign(r, derive(r.c, now));
    drawCounts();
    header();
    const rows = visible();
    drawPager(rows.length);
    const first = state.page * PAGE;
    const slice = rows.slice(first, first + PAGE);
    drawRows(slice, now);
    const range = rows.length ? `${first + 1}–${first + slice.length} of ${rows.length.toLocaleString()}` : "none";
    put(shown, `Showing ${range} connectors`, rows.length !== state.rows.length ? ` (filtered from ${state.rows.length.toLocaleString()})` : "");
    if (!state.rows.length) put(tbody, h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No connectors in this account yet.")));
    else if (!rows.length) put(tbody, h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No connector matches.")));
  }

  function apply(result, full) {
    ctx.clockOffset = result.as_of - Date.now() / 1000;
    if (full) state.byId = new Map();
    for (const c of result.connectors) {
      c.text = searchText(c);
      state.byId.set(c.id, c);
    }
    state.rows = Array.from(state.byId.values(), (c) => ({ c, text: c.text }));
    state.asOf = result.as_of;
  }

  let timer = null;
  filter.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.filter = filter.value; state.page = 0; saveUrl(); draw(); }, 120);
  });

  async function load(full) {
    const since = full ? null : state.asOf;
    const prefetched = full && ctx.prefetch && ctx.prefetch.accountId === accountId ? ctx.prefetch.result : null;
    ctx.prefetch = null;
    const result = await (prefetched || api.fleet(accountId, since));
    if (full) state.loadedAt = Date.now();
    if (full || result.connectors.length) {
      apply(result, full);
      draw();
    } else {
      ctx.clockOffset = result.as_of - Date.now() / 1000;
      state.asOf = result.as_of;
    }
  }

  const tick = setInterval(() => draw(), 10000); // relative times and staleness move
  let live = null;
  header();
  drawCounts();
  load(true).then(() => {
    main.dataset.ready = "fleet";
    performance.mark("ctel:fleet-ready");
    const stream = { template: "/accounts/{account_id}/magic/connectors/telemetry/stream", path: `${Api.connectors(accountId)}/telemetry/stream` };
    live = new Live(api, [stream], () =>
      load(Date.now() - state.loadedAt > FULL_REFRESH_MS), ctx.live);
    live.start();
  }).catch((err) => {
    put(shown, `The fleet could not be loaded: ${err.describe ? err.describe() : err.message}`);
  });
  return {
    stop() {
      clearInterval(tick);
      if (live) live.stop();
    },
  };
}
