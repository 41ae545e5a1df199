// Charts of a snapshot series (the API's columns, rates already computed) with uPlot,
// the vendored chart library (web/VENDOR.md). One chart per quantity; each has a title,
// axis labels and a legend whose values follow the cursor. Series named by devices
// (mounts, interfaces, sensors) are labelled with text only (uPlot sets textContent).

import { bytes, number, percent } from "./format.js";
import { h } from "./dom.js";

const PALETTE = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#4b5563"];
const DASHES = [null, [6, 3], [2, 3], [8, 3, 2, 3]];

function seriesStyle(i) {
  const dash = DASHES[Math.floor(i / PALETTE.length) % DASHES.length];
  return { stroke: PALETTE[i % PALETTE.length], width: 1.5, ...(dash ? { dash } : {}), spanGaps: false, points: { show: false } };
}

function valueFormat(kind) {
  if (kind === "percent") return (u, v) => (v === null || v === undefined ? "–" : percent(v, 1));
  if (kind === "rate") return (u, v) => (v === null || v === undefined ? "–" : bytes(v, "/s"));
  if (kind === "celsius") return (u, v) => (v === null || v === undefined ? "–" : `${number(v, 1)} °C`);
  if (kind === "count") return (u, v) => (v === null || v === undefined ? "–" : String(v));
  return (u, v) => (v === null || v === undefined ? "–" : number(v, 2));
}

function axisFormat(kind) {
  if (kind === "percent") return (u, vals) => vals.map((v) => `${Math.round(v * 100)}%`);
  if (kind === "rate") return (u, vals) => vals.map((v) => bytes(v, "/s"));
  if (kind === "celsius") return (u, vals) => vals.map((v) => `${v}°`);
  return (u, vals) => vals.map((v) => String(Math.round(v * 100) / 100));
}

/** The charts' definitions: [title, unit label, kind, series [{label, values, show}]] */
export function chartSpecs(data) {
  const specs = [
    { id: "cpu", title: "CPU use", unit: "% of CPU time", kind: "percent", range: [0, 1],
      series: [{ label: "CPU busy", values: data.cpu }] },
    { id: "load", title: "Load average", unit: "runnable tasks", kind: "number",
      series: [["1 min", "1m"], ["5 min", "5m"], ["15 min", "15m"]].map(([label, k]) => ({ label, values: data.load[k] })) },
    { id: "memory", title: "Memory in use", unit: "% of total", kind: "percent", range: [0, 1],
      series: [{ label: "Memory used", values: data.memory }] },
    { id: "disk", title: "Disk use per mount", unit: "% used", kind: "percent", range: [0, 1],
      series: data.mounts.map((m) => ({ label: m.name, values: m.used })) },
    { id: "rx", title: "Network receive", unit: "bytes per second", kind: "rate",
      series: data.interfaces.map((i) => ({ label: i.name, values: i.rx, show: i.name !== "lo" })) },
    { id: "tx", title: "Network transmit", unit: "bytes per second", kind: "rate",
      series: data.interfaces.map((i) => ({ label: i.name, values: i.tx, show: i.name !== "lo" })) },
    { id: "tunnels", title: "Tunnel health", unit: "tunnels", kind: "count",
      series: [{ label: "up", values: data.tunnels.up }, { label: "degraded", values: data.tunnels.degraded }, { label: "total", values: data.tunnels.total }] },
    { id: "thermals", title: "Temperatures", unit: "°C", kind: "celsius",
      series: data.thermals.map((th) => ({ label: th.label, values: th.celsius })) },
  ];
  return specs;
}

function options(spec, width) {
  return {
    width,
    height: 170,
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    // Fractions: from 0 to a little above the highest value (at most 100 %), so a quiet
    // connector's few percent are not a flat line at the bottom.
    scales: { x: { time: true }, y: spec.range ? { range: (u, min, max) => [0, Math.min(1, Math.max(0.05, (max || 0) * 1.25))] } : { auto: true } },
    axes: [
      { label: "Local time", labelSize: 18, size: 62, stroke: "#374151", grid: { stroke: "#e5e7eb" }, ticks: { stroke: "#d1d5db" } },
      { label: spec.unit, labelSize: 20, size: spec.kind === "rate" ? 78 : 56, values: axisFormat(spec.kind), stroke: "#374151", grid: { stroke: "#e5e7eb" }, ticks: { stroke: "#d1d5db" } },
    ],
    series: [
      { label: "Time", value: (u, v) => (v === null || v === undefined ? "–" : new Date(v * 1000).toLocaleString()) },
      ...spec.series.map((ser, i) => ({ label: ser.label, value: valueFormat(spec.kind), show: ser.show !== false, ...seriesStyle(i) })),
    ],
  };
}

/** Charts for `data` in `wrap`; returns { update(data), resize(), destroy() }. */
export function drawCharts(wrap, data) {
  const charts = new Map();
  const figures = [];
  const width = (holder) => Math.max(240, (holder.clientWidth || wrap.clientWidth || 600) - 2);
  const build = (d) => {
    for (const spec of chartSpecs(d)) {
      if (!spec.series.length) continue;
      const plotData = [d.t, ...spec.series.map((ser) => ser.values)];
      const existing = charts.get(spec.id);
      if (existing && existing.labels === spec.series.map((x) => x.label).join("\n")) {
        existing.plot.setData(plotData);
        continue;
      }
      if (existing) existing.plot.destroy();
      const holder = existing ? existing.holder : h("div", { class: "chart-body" });
      if (!existing) {
        const figure = h("figure", { class: "chart", dataset: { chart: spec.id } },
          h("figcaption", {}, h("h3", {}, spec.title), h("span", { class: "unit" }, spec.unit)), holder);
        figures.push(figure);
        wrap.append(figure);
      }
      // uPlot is loaded by a classic script before the modules run.
      // The canvas says nothing to a screen reader: the chart's axes and size, in words.
      holder.setAttribute("role", "img");
      holder.setAttribute("aria-label", `${spec.title}: x axis Local time, y axis ${spec.unit}; `
        + `${spec.series.map((x) => x.label).join(", ")}; ${d.t.length} snapshots`);
      const plot = new window.uPlot(options(spec, width(holder)), plotData, holder);
      charts.set(spec.id, { plot, holder, labels: spec.series.map((x) => x.label).join("\n") });
    }
  };
  build(data);
  return {
    update(d) { build(d); },
    resize() { for (const c of charts.values()) c.plot.setSize({ width: width(c.holder), height: 170 }); },
    destroy() { for (const c of charts.values()) c.plot.destroy(); charts.clear(); },
    count: () => charts.size,
  };
}
