// A connector's page: a time range, its event timeline, charts of its snapshots, its
// settings and interrupts (with buttons to request one, for a Write credential).

import { Api, appendSeries } from "./api.js";
import { $, h, put } from "./dom.js";
import { drawCharts } from "./charts.js";
import { duration, localTime, timeEl } from "./format.js";
import { Live } from "./live.js";
import { drawTimeline, family, isFailure, legend } from "./timeline.js";

const RANGES = [
  { key: "1h", label: "Last hour", seconds: 3600 },
  { key: "24h", label: "Last day", seconds: 86400 },
  { key: "7d", label: "Last week", seconds: 7 * 86400 },
];
const ACTIONS = [
  { key: "reboot", label: "Reboot", help: "restarts the appliance" },
  { key: "restart", label: "Restart", help: "restarts the connector software" },
  { key: "shutdown", label: "Shutdown", help: "powers the appliance off; someone on site must turn it on again" },
];

function toLocalInput(epoch) {
  const d = new Date(epoch * 1000);
  const pad = (v) => String(v).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  const ms = new Date(value).getTime(); // a datetime-local value is local time
  return Number.isNaN(ms) ? null : ms / 1000;
}

/**
 * The `result` of an answer exactly as the server wrote it (our envelope is
 * `{"result":<result>,"success":true,...}`): numbers keep their spelling, keys their order.
 * Any other shape: the parsed result, formatted.
 */
function rawResult(text, result) {
  const head = '{"result":';
  const tail = ',"success":true,"errors":[],"messages":[]}';
  if (text.startsWith(head) && text.endsWith(tail)) {
    const raw = text.slice(head.length, text.length - tail.length);
    try {
      JSON.parse(raw);
      return raw;
    } catch { /* not the shape expected: fall through */ }
  }
  return JSON.stringify(result, null, 2);
}

export function renderConnector(main, ctx, connectorId, params) {
  const { api } = ctx;
  const accountId = ctx.account.id;
  const path = Api.connector(accountId, connectorId);
  const custom = params.has("from") && params.has("to");
  const range = custom ? null : RANGES.find((r) => r.key === params.get("range")) || RANGES[1];
  const state = { from: 0, to: 0, events: [], series: null, connector: null, stopped: false };
  const bounds = () => {
    if (range) {
      state.to = ctx.now();
      state.from = state.to - range.seconds;
    } else {
      state.from = Number(params.get("from"));
      state.to = Number(params.get("to"));
    }
  };
  bounds();

  const title = h("h1", {}, "Connector");
  const facts = h("dl", { class: "facts" });
  const status = h("p", { class: "status-line", role: "status", "aria-live": "polite" });
  const timelineWrap = h("div", { class: "timeline-wrap" });
  const eventsBox = h("details", { class: "events" });
  const chartsWrap = h("div", { class: "charts" });
  const settings = h("dl", { class: "facts settings" });
  const interrupts = h("div", { class: "interrupts" });
  const actionNote = h("p", { class: "action-note", role: "alert", hidden: true });
  const eventDialog = h("dialog", { class: "event-dialog", "aria-labelledby": "event-title" });
  const confirmDialog = h("dialog", { class: "confirm-dialog", "aria-labelledby": "confirm-title" });

  const rangeLink = (r) => `#/connectors/${encodeURIComponent(connectorId)}?range=${r.key}`;
  const fromInput = h("input", { type: "datetime-local", id: "range-from", name: "from", value: toLocalInput(state.from), required: true });
  const toInput = h("input", { type: "datetime-local", id: "range-to", name: "to", value: toLocalInput(state.to), required: true });
  const customForm = h("form", { class: "custom-range", hidden: !custom },
    h("label", { for: "range-from" }, "From"), fromInput,
    h("label", { for: "range-to" }, "To"), toInput,
    h("button", { type: "submit" }, "Show"));
  customForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const from = fromLocalInput(fromInput.value);
    const to = fromLocalInput(toInput.value);
    if (from === null || to === null || to <= from) {
      put(status, "Pick a start before the end.");
      return;
    }
    location.hash = `#/connectors/${encodeURIComponent(connectorId)}?from=${Math.floor(from)}&to=${Math.ceil(to)}`;
  });
  const picker = h("nav", { class: "range", "aria-label": "Time range" },
    RANGES.map((r) => h("a", { href: rangeLink(r), class: "range-button", "aria-current": range === r ? "true" : null, dataset: { range: r.key } }, r.label)),
    h("button", {
      type: "button", class: "range-button", "aria-pressed": custom ? "true" : "false", "aria-controls": "custom-range", dataset: { range: "custom" },
      onclick: () => { customForm.hidden = !customForm.hidden; if (!customForm.hidden) fromInput.focus(); },
    }, "Custom…"),
    customForm);
  customForm.id = "custom-range";

  const actionButtons = h("div", { class: "actions", dataset: { requires: "write" }, hidden: !ctx.canWrite },
    ACTIONS.map((a) => h("button", {
      type: "button", class: `action action-${a.key}`, dataset: { requires: "write", action: a.key }, hidden: !ctx.canWrite,
      onclick: () => confirmAction(a),
    }, `${a.label}…`)));
  const readOnlyNote = h("p", { class: "help", hidden: ctx.canWrite }, "This credential can only read: requesting a reboot, restart or shutdown needs Magic WAN Write.");

  put(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Fleet")),
    h("div", { class: "page-head" }, title, status),
    facts,
    picker,
    h("section", { class: "panel", "aria-labelledby": "timeline-title" },
      h("h2", { id: "timeline-title" }, "Events"), legend(), timelineWrap, eventsBox),
    h("section", { class: "panel", "aria-labelledby": "charts-title" },
      h("h2", { id: "charts-title" }, "Snapshots"),
      h("p", { class: "help" }, "Rates (CPU, network) come from the counters of consecutive snapshots; a counter that starts again (a reboot) counts from zero. Drag across a chart to zoom, double-click to zoom out."),
      chartsWrap),
    h("div", { class: "two" },
      h("section", { class: "panel", "aria-labelledby": "settings-title" }, h("h2", { id: "settings-title" }, "Settings"), settings),
      h("section", { class: "panel", "aria-labelledby": "interrupts-title" },
        h("h2", { id: "interrupts-title" }, "Interrupts"), actionButtons, readOnlyNote, actionNote, interrupts)),
    eventDialog, confirmDialog);

  // -- the event dialog: the event exactly as Get Event returns it --------------------
  async function openEvent(e) {
    put(eventDialog,
      h("h2", { id: "event-title" }, e.k),
      h("p", {}, timeEl(e.t), h("span", { class: "muted" }, ` · t ${e.t}, n ${e.n}`)),
      h("p", { class: "muted" }, "Loading…"));
    if (!eventDialog.open) eventDialog.showModal();
    try {
      const { result, text } = await api.getEvent(accountId, connectorId, e.t, e.n);
      const pre = h("pre", { class: "json", tabindex: "0", "aria-label": "Event JSON" }, rawResult(text, result));
      put(eventDialog,
        h("h2", { id: "event-title" }, e.k, isFailure(e.k) ? h("span", { class: "badge failure" }, "▲ failure") : null),
        h("p", {}, timeEl(e.t), h("span", { class: "muted" }, ` · ${family(e.k).label} · t ${e.t}, n ${e.n}`)),
        h("p", { class: "help" }, "Exactly as Get Event returns it (its ", h("code", {}, "result"), "):"),
        pre,
        h("form", { method: "dialog" }, h("button", { type: "submit", class: "primary", autofocus: true }, "Close")));
    } catch (err) {
      put(eventDialog, h("h2", { id: "event-title" }, e.k), h("p", { role: "alert" }, `The event could not be read: ${err.describe ? err.describe() : err.message}`),
        h("form", { method: "dialog" }, h("button", { type: "submit" }, "Close")));
    }
  }

  // -- interrupts -------------------------------------------------------------------
  function confirmAction(action) {
    const purge = h("input", { type: "checkbox", id: "purge", name: "purge" });
    const c = state.connector;
    const name = c ? c.notes || c.id : connectorId;
    const form = h("form", { method: "dialog", class: "confirm" },
      h("h2", { id: "confirm-title" }, `${action.label} this connector?`),
      h("p", {}, `Request a ${action.key} of `, h("strong", {}, name), ` (${connectorId}). It ${action.help}. The connector acts on it at its next check-in.`),
      h("p", {}, purge, " ", h("label", { for: "purge" }, "Purge: clear the connector's local state as well")),
      h("div", { class: "buttons" },
        h("button", { type: "submit", value: "cancel", class: "secondary" }, "Cancel"),
        h("button", { type: "submit", value: "confirm", class: "danger", dataset: { requires: "write", confirm: action.key } }, `Request ${action.key}`)));
    put(confirmDialog, form);
    confirmDialog.returnValue = "";
    confirmDialog.onclose = async () => {
      if (confirmDialog.returnValue !== "confirm") return;
      actionNote.hidden = false;
      actionNote.className = "action-note";
      put(actionNote, `Requesting a ${action.key}…`);
      try {
        const made = await api.createInterrupt(accountId, connectorId, action.key, purge.checked);
        await loadInterrupts().catch(() => {});
        put(actionNote, `${action.label} requested (interrupt ${made.id}); the connector picks it up at its next check-in.`);
        actionNote.classList.add("ok");
      } catch (err) {
        actionNote.classList.add("error");
        const why = err.status === 403 ? " This credential may not request interrupts (it needs Magic WAN Write)."
          : err.status === 409 ? " An interrupt is already pending: the connector has not picked it up yet." : "";
        put(actionNote, `The API refused the ${action.key}: ${err.describe ? err.describe() : err.message}.${why}`);
      }
    };
    confirmDialog.showModal();
    $("button.secondary", form).focus();
  }

  async function loadInterrupts() {
    const list = await api.listInterrupts(accountId, connectorId);
    if (!list.length) {
      put(interrupts, h("p", { class: "muted" }, "No interrupt was ever requested."));
      return;
    }
    const rows = list.slice().reverse().map((i) => {
      const action = ACTIONS.find((a) => i[a.key]) || { key: "?", label: "?" };
      return h("tr", {},
        h("td", { class: "mono" }, i.id),
        h("td", {}, action.label, i[action.key] && i[action.key].purge ? " (purge)" : ""),
        h("td", {}, timeEl(Date.parse(i.submitted_at) / 1000)),
        h("td", {}, i.triggered_at ? timeEl(Date.parse(i.triggered_at) / 1000) : h("span", { class: "badge pending" }, "◷ pending")));
    });
    put(interrupts, h("table", { class: "plain" },
      h("thead", {}, h("tr", {}, ["Id", "Action", "Requested", "Picked up"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
  }

  // -- the connector's facts and settings ---------------------------------------------
  function drawFacts(c) {
    const name = c.notes || "(no notes)";
    put(title, name);
    document.title = `${name} · ctel`;
    const heartbeat = c.last_heartbeat ? Date.parse(c.last_heartbeat) / 1000 : null;
    const fact = (label, ...value) => [h("dt", {}, label), h("dd", {}, ...value)];
    put(facts,
      fact("Connector id", h("span", { class: "mono" }, c.id)),
      fact("Device", `${c.device.type} · `, h("span", { class: "mono" }, c.device.serial_number || c.device.id)),
      fact("Activated", c.activated ? "yes" : "no"),
      fact("Last heartbeat", heartbeat === null ? "never" : timeEl(heartbeat, { relativeTo: ctx.now() })),
      fact("Last seen version", c.last_seen_version || "–"));
    const window = c.interrupt_window_days_of_week.length === 7 ? "every day" : c.interrupt_window_days_of_week.join(", ") || "no day";
    const hour = Number(c.interrupt_window_hour_of_day);
    const start = `${String(Math.floor(hour)).padStart(2, "0")}:${String(Math.round((hour % 1) * 60)).padStart(2, "0")}`;
    put(settings,
      fact("Interrupt window", `${window}, from ${start} for ${duration(c.interrupt_window_duration_hours * 3600)} (connector's local time)`),
      fact("Timezone", c.timezone),
      fact("Embargo dates", c.interrupt_window_embargo_dates.length ? c.interrupt_window_embargo_dates.join(", ") : "none"),
      fact("Last updated", timeEl(Date.parse(c.last_updated) / 1000)));
  }

  // -- events and snapshots ------------------------------------------------------------
  function drawEvents() {
    const inRange = state.events.filter((e) => e.t >= state.from && e.t <= state.to);
    drawTimeline(timelineWrap, inRange, state.from, state.to, openEvent);
    const failures = inRange.filter((e) => isFailure(e.k)).length;
    const newest = inRange.slice().sort((a, b) => b.t - a.t || b.n - a.n).slice(0, 200);
    put(eventsBox,
      h("summary", {}, `${inRange.length} events in this range`, failures ? `, ${failures} failures` : "", inRange.length > 200 ? " (the 200 newest listed)" : ""),
      h("table", { class: "plain events-table" },
        h("thead", {}, h("tr", {}, ["Time", "Kind", "Family", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, newest.map((e) => h("tr", { class: isFailure(e.k) ? "failure" : "" },
          h("td", {}, timeEl(e.t, { short: true })),
          h("td", {}, isFailure(e.k) ? h("span", { class: "badge failure" }, "▲ ") : null, e.k),
          h("td", {}, family(e.k).label),
          h("td", {}, h("button", { type: "button", class: "link", onclick: () => openEvent(e) }, "View JSON")))))));
  }

  let charts = null;
  function drawSeries() {
    const d = state.series;
    if (!d || !d.t.length) {
      if (charts) { charts.destroy(); charts = null; }
      put(chartsWrap, h("p", { class: "muted" }, "No snapshot in this range."));
      return;
    }
    if (!charts) {
      put(chartsWrap);
      charts = drawCharts(chartsWrap, d);
    } else {
      charts.update(d);
    }
  }

  function trim(series, from) {
    let cut = 0;
    while (cut < series.t.length && series.t[cut] < from) cut += 1;
    if (!cut) return;
    const drop = (a) => a.splice(0, cut);
    drop(series.t); drop(series.cpu); drop(series.memory);
    Object.values(series.load).forEach(drop);
    Object.values(series.tunnels).forEach(drop);
    for (const list of [series.mounts, series.interfaces, series.thermals]) {
      for (const item of list) for (const v of Object.values(item)) if (Array.isArray(v)) drop(v);
    }
    series.count = series.t.length;
  }

  async function loadAll() {
    const started = performance.now();
    const [connector, events, series] = await Promise.all([
      api.getConnector(accountId, connectorId),
      api.listEvents(accountId, connectorId, Math.floor(state.from), Math.ceil(state.to) + (range ? 86400 : 0)),
      api.series(accountId, connectorId, Math.floor(state.from), Math.ceil(state.to) + (range ? 86400 : 0)),
      loadInterrupts(),
    ]);
    if (state.stopped) return;
    state.connector = connector;
    state.events = events;
    state.series = series;
    const arrived = performance.now();
    drawFacts(connector);
    drawEvents();
    drawSeries();
    const drawn = performance.now();
    performance.measure("ctel:series-draw", { start: arrived, end: drawn });
    main.dataset.drawMs = String(Math.round(drawn - arrived));
    main.dataset.loadMs = String(Math.round(arrived - started));
    put(status, `${range ? range.label : "From"} ${range ? "" : `${localTime(state.from)} to ${localTime(state.to)}`}`.trim(), " · ",
      `${series.count.toLocaleString()} snapshots, ${events.length.toLocaleString()} events`);
  }

  // Live: what arrived since (events after the newest shown, snapshots after the last).
  async function refresh() {
    if (!range) return;
    bounds();
    const newest = state.events.reduce((m, e) => Math.max(m, e.t), state.from);
    const lastT = state.series && state.series.t.length ? state.series.t[state.series.t.length - 1] : state.from;
    const [connector, events, series] = await Promise.all([
      api.getConnector(accountId, connectorId),
      api.listEvents(accountId, connectorId, Math.floor(newest), Math.ceil(state.to) + 86400),
      api.series(accountId, connectorId, lastT, Math.ceil(state.to) + 86400),
    ]);
    if (state.stopped) return;
    const seen = new Set(state.events.map((e) => `${e.t}/${e.n}`));
    const fresh = events.filter((e) => !seen.has(`${e.t}/${e.n}`));
    // Redraw only what changed: a redraw would close an open list, move the focus.
    if (JSON.stringify(connector) !== JSON.stringify(state.connector)) drawFacts(connector);
    state.connector = connector;
    const grew = fresh.length > 0 || series.t.length > 1 || (series.t.length === 1 && series.t[0] !== lastT);
    if (fresh.length) {
      state.events.push(...fresh);
      state.to = Math.max(state.to, ...fresh.map((e) => e.t));
    }
    const lastTo = state.series && state.series.t.length ? state.series.t[state.series.t.length - 1] : null;
    if (series.t.length && series.t[0] === lastTo) {
      // The first point is the last one shown (read again as the rates' baseline).
      const first = { ...series };
      trimFirst(first);
      appendSeries(state.series, first);
    } else if (series.t.length) {
      if (state.series && state.series.t.length) appendSeries(state.series, series);
      else state.series = series;
    }
    if (state.series) trim(state.series, state.from);
    if (fresh.length || Date.now() - drawnAt > 30000) {
      // (the window slides: redrawn at least every 30 s even without new events)
      const open = eventsBox.open;
      const focused = document.activeElement && document.activeElement.closest(".mark");
      drawEvents();
      eventsBox.open = open;
      if (focused) {
        const again = timelineWrap.querySelector(`.mark[data-event-t="${focused.dataset.eventT}"][data-event-n="${focused.dataset.eventN}"]`);
        if (again) {
          timelineWrap.querySelectorAll('.mark[tabindex="0"]').forEach((m) => m.setAttribute("tabindex", "-1"));
          again.setAttribute("tabindex", "0");
          again.focus();
        }
      }
      drawnAt = Date.now();
    }
    if (grew) drawSeries();
  }
  let drawnAt = Date.now();

  function trimFirst(series) {
    series.t = series.t.slice(1);
    series.cpu = series.cpu.slice(1);
    series.memory = series.memory.slice(1);
    series.load = Object.fromEntries(Object.entries(series.load).map(([k, v]) => [k, v.slice(1)]));
    series.tunnels = Object.fromEntries(Object.entries(series.tunnels).map(([k, v]) => [k, v.slice(1)]));
    const cut = (list) => list.map((item) => Object.fromEntries(Object.entries(item).map(([k, v]) => [k, Array.isArray(v) ? v.slice(1) : v])));
    series.mounts = cut(series.mounts);
    series.interfaces = cut(series.interfaces);
    series.thermals = cut(series.thermals);
  }

  const onResize = () => {
    if (charts) charts.resize();
    if (state.connector) drawEvents();
  };
  let resizeTimer = null;
  const resized = () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(onResize, 150); };
  window.addEventListener("resize", resized);

  let live = null;
  put(status, "Loading…");
  loadAll().then(() => {
    main.dataset.ready = "connector";
    performance.mark("ctel:connector-ready");
    if (range) {
      const base = `${path}/telemetry`;
      const template = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry";
      const streams = ["events", "snapshots"].map((kind) => ({ template: `${template}/${kind}/stream`, path: `${base}/${kind}/stream` }));
      live = new Live(api, streams, refresh, ctx.live);
      live.start();
    } else {
      ctx.live("Fixed range (not live)");
    }
  }).catch((err) => {
    if (err.status === 404) put(status, "No such connector in this account.");
    else put(status, `The connector could not be loaded: ${err.describe ? err.describe() : err.message}`);
  });
  return {
    stop() {
      state.stopped = true;
      window.removeEventListener("resize", resized);
      if (live) live.stop();
      if (charts) charts.destroy();
    },
  };
}
