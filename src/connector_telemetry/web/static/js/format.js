// Times and numbers as people read them: times in the browser's timezone, with the UTC
// value on hover; sizes and rates with units.

import { h } from "./dom.js";

const local = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const localShort = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

/** "2026-11-28 10:19:50 UTC" */
export function utc(epochSeconds) {
  const iso = new Date(epochSeconds * 1000).toISOString();
  return iso.slice(0, 19).replace("T", " ") + " UTC";
}

export function localTime(epochSeconds, short = false) {
  return (short ? localShort : local).format(new Date(epochSeconds * 1000));
}

export function parseTime(rfc3339) {
  if (!rfc3339) return null;
  const ms = Date.parse(rfc3339);
  return Number.isNaN(ms) ? null : ms / 1000;
}

/** "42 s ago", "3 min ago", "5 h ago", "2 d ago" (nowSeconds: the server's clock). */
export function ago(epochSeconds, nowSeconds) {
  const d = Math.max(0, nowSeconds - epochSeconds);
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400 * 2) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

export function duration(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400 * 2) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** A <time> element: local time (or a relative one) shown, UTC on hover. */
export function timeEl(epochSeconds, { relativeTo = null, short = false } = {}) {
  if (epochSeconds === null || epochSeconds === undefined) return h("span", { class: "muted" }, "never");
  const iso = new Date(epochSeconds * 1000).toISOString();
  const text = relativeTo === null ? localTime(epochSeconds, short) : ago(epochSeconds, relativeTo);
  const title = relativeTo === null ? utc(epochSeconds) : `${localTime(epochSeconds)} (${utc(epochSeconds)})`;
  return h("time", { datetime: iso, title, dataset: { t: epochSeconds } }, text);
}

export function percent(fraction, digits = 0) {
  if (fraction === null || fraction === undefined) return "–";
  return `${(fraction * 100).toFixed(digits)} %`;
}

const UNITS = ["B", "KB", "MB", "GB", "TB"];
export function bytes(value, suffix = "") {
  if (value === null || value === undefined) return "–";
  let v = Math.abs(value);
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) { v /= 1000; i += 1; }
  const sign = value < 0 ? "-" : "";
  return `${sign}${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${UNITS[i]}${suffix}`;
}

export function number(value, digits = 2) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits);
}
