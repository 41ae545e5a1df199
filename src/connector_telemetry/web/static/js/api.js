// The dashboard's only way to the data: the public API it is served beside, with the
// signed-in credential in request headers (never a cookie: `credentials: "omit"`).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** "403 Authentication error (code 10000)" */
  describe() {
    return `${this.status} ${this.message}${this.code ? ` (code ${this.code})` : ""}`;
  }
}

/** The credential was refused as such (revoked, expired, unknown): sign out. */
export const CREDENTIAL_REFUSED = new Set([9109, 9103, 1000, 9106, 6003]);

const enc = encodeURIComponent;

export class Api {
  constructor(prefix, credential, onRefused) {
    this.prefix = prefix;
    this.credential = credential;
    this.onRefused = onRefused || (() => {});
  }

  headers() {
    const c = this.credential;
    if (c.kind === "token") return { Authorization: `Bearer ${c.token}` };
    return { "X-Auth-Email": c.email, "X-Auth-Key": c.key };
  }

  url(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    return `${this.prefix}${path}${query}`;
  }

  async request(method, path, { params = null, body = undefined, signal = undefined } = {}) {
    const headers = { ...this.headers(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(this.url(path, params), {
        method, headers, signal, cache: "no-store", credentials: "omit", redirect: "error",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, 0, "the server cannot be reached");
    }
    const text = await response.text();
    let parsed = null;
    try { parsed = JSON.parse(text); } catch { /* not JSON: reported below */ }
    if (!response.ok || !parsed || parsed.success !== true) {
      const first = parsed && parsed.errors && parsed.errors[0];
      const err = new ApiError(
        response.status, first ? first.code : 0,
        first ? first.message : `unexpected answer (HTTP ${response.status})`,
      );
      if (response.status !== 404 && CREDENTIAL_REFUSED.has(err.code)) this.onRefused(err);
      throw err;
    }
    return { result: parsed.result, text, response };
  }

  async get(path, params) {
    return (await this.request("GET", path, { params })).result;
  }

  async post(path, body) {
    return (await this.request("POST", path, { body })).result;
  }

  /** Every item of a cursor-paged list. */
  async all(path, params, limit = 1000) {
    const items = [];
    let cursor = null;
    do {
      const page = await this.get(path, { ...params, limit, ...(cursor ? { cursor } : {}) });
      items.push(...page.items);
      cursor = page.cursor || null;
    } while (cursor);
    return items;
  }

  // -- the paths ---------------------------------------------------------------------

  static connectors(accountId) {
    return `/accounts/${enc(accountId)}/magic/connectors`;
  }

  static connector(accountId, connectorId) {
    return `${Api.connectors(accountId)}/${enc(connectorId)}`;
  }

  accounts() { return this.get("/accounts"); }

  fleet(accountId, changedSince) {
    const params = changedSince ? { changed_since: changedSince } : null;
    return this.get(`${Api.connectors(accountId)}/telemetry/summary`, params);
  }

  getConnector(accountId, id) { return this.get(Api.connector(accountId, id)); }

  listEvents(accountId, id, from, to) {
    return this.all(`${Api.connector(accountId, id)}/telemetry/events`, { from, to });
  }

  getEvent(accountId, id, t, n) {
    return this.request("GET", `${Api.connector(accountId, id)}/telemetry/events/${t}.${n}`);
  }

  async series(accountId, id, from, to) {
    const path = `${Api.connector(accountId, id)}/telemetry/snapshots/series`;
    let page = await this.get(path, { from, to });
    const all = page;
    while (page.cursor) {
      page = await this.get(path, { from, to, cursor: page.cursor });
      appendSeries(all, page);
    }
    delete all.cursor;
    return all;
  }

  listInterrupts(accountId, id) {
    return this.get(`${Api.connector(accountId, id)}/interrupts`);
  }

  createInterrupt(accountId, id, action, purge) {
    return this.post(`${Api.connector(accountId, id)}/interrupts`, { [action]: { purge } });
  }
}

function extend(into, values) {
  for (const v of values) into.push(v);
}

function pad(values, length) {
  while (values.length < length) values.push(null);
}

/** Columns of device-named items (mounts, interfaces, sensors), merged by name. */
function mergeNamed(into, add, key, before, total) {
  const byName = new Map(into.map((item) => [item[key], item]));
  for (const item of add) {
    let target = byName.get(item[key]);
    if (!target) {
      target = { [key]: item[key] };
      for (const column of Object.keys(item)) if (column !== key) target[column] = [];
      into.push(target);
      byName.set(item[key], target);
    }
    for (const column of Object.keys(item)) {
      if (column === key) continue;
      pad(target[column], before);
      extend(target[column], item[column]);
    }
  }
  for (const item of into) {
    for (const column of Object.keys(item)) if (column !== key) pad(item[column], total);
  }
}

/** Append one page of a snapshot series to another (the columns of both, in place). */
export function appendSeries(all, page) {
  const before = all.t.length;
  const total = before + page.t.length;
  extend(all.t, page.t);
  extend(all.cpu, page.cpu);
  extend(all.memory, page.memory);
  for (const k of Object.keys(all.load)) extend(all.load[k], page.load[k]);
  for (const k of Object.keys(all.tunnels)) extend(all.tunnels[k], page.tunnels[k]);
  mergeNamed(all.mounts, page.mounts, "name", before, total);
  mergeNamed(all.interfaces, page.interfaces, "name", before, total);
  mergeNamed(all.thermals, page.thermals, "label", before, total);
  all.count = total;
  all.cursor = page.cursor;
}
