// Live updates. When the server has the arrival-ordered telemetry stream (Server-Sent
// Events; its OpenAPI document lists the stream's path), it is read with fetch, so the
// credential goes in the Authorization header as on every other call (EventSource cannot
// send headers, and the dashboard keeps no cookie); each message wakes the page, which
// fetches what changed. Without the stream, the page polls every second. Either way
// nothing runs while the tab is hidden, and a wake-up catches up at once.

const POLL_MS = 1000;
const RETRY_MS = 2000;

export class Live {
  /**
   * api: the Api; streams: [{template, path}] of the SSE streams to follow (template as
   * in the OpenAPI document); refresh: async () => fetch what changed; onMode: (text) =>
   * shown to the user.
   */
  constructor(api, streams, refresh, onMode) {
    this.api = api;
    this.streams = streams;
    this.refresh = refresh;
    this.onMode = onMode || (() => {});
    this.stopped = false;
    this.controller = null;
    this.timer = null;
    this.running = false;
    this.again = false;
    this.mode = "starting";
    this.lastIds = new Map();
    this.onVisible = () => { if (document.visibilityState === "visible") this.wake(); };
  }

  async start() {
    document.addEventListener("visibilitychange", this.onVisible);
    this.controller = new AbortController();
    const offered = await streamPaths(this.api);
    if (this.stopped) return;
    if (this.streams.length && this.streams.every((st) => offered.has(st.template))) {
      for (const st of this.streams) this.follow(st.path);
    } else {
      this.poll();
    }
  }

  stop() {
    this.stopped = true;
    document.removeEventListener("visibilitychange", this.onVisible);
    if (this.controller) this.controller.abort();
    clearTimeout(this.timer);
  }

  setMode(mode, text) {
    if (this.mode === mode) return;
    this.mode = mode;
    this.onMode(text);
  }

  /** Run refresh now (one at a time; a wake-up during a run runs it once more after). */
  async wake() {
    if (this.stopped || document.visibilityState === "hidden") return;
    if (this.running) { this.again = true; return; }
    this.running = true;
    try {
      await this.refresh();
      if (this.mode === "offline") this.setMode(this.pollMode ? "poll" : "stream", this.modeText());
    } catch (err) {
      if (err.name !== "AbortError") this.setMode("offline", `Updates paused: ${err.message}`);
    } finally {
      this.running = false;
      if (this.again) { this.again = false; this.wake(); }
    }
  }

  modeText() {
    return this.pollMode ? "Live (polling every second)" : "Live";
  }

  poll() {
    this.pollMode = true;
    this.setMode("poll", this.modeText());
    const tick = async () => {
      if (this.stopped) return;
      await this.wake();
      if (!this.stopped) this.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  async follow(path) {
    while (!this.stopped) {
      const headers = { ...this.api.headers(), Accept: "text/event-stream" };
      const last = this.lastIds.get(path);
      if (last) headers["Last-Event-ID"] = last;
      let response;
      try {
        response = await fetch(this.api.url(path), {
          headers, signal: this.controller.signal, cache: "no-store", credentials: "omit",
        });
      } catch (err) {
        if (this.stopped) return;
        this.setMode("offline", "Updates paused: the server cannot be reached");
        await sleep(RETRY_MS);
        continue;
      }
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.startsWith("text/event-stream")) {
        if (response.status === 403 || response.status === 401) {
          // Let the API layer decide (sign out on a refused credential).
          await this.wake();
        }
        if (!this.pollMode && !this.stopped) {
          this.controller.abort();
          this.controller = new AbortController();
          this.poll();
        }
        return;
      }
      this.setMode("stream", this.modeText());
      this.wake(); // catch up with what happened before the stream opened
      try {
        await this.read(path, response.body.getReader());
      } catch (err) {
        if (this.stopped) return;
      }
      await sleep(RETRY_MS / 4);
    }
  }

  async read(path, reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null;
        let data = false;
        for (const line of block.split("\n")) {
          if (line.startsWith("id:")) id = line.slice(3).trim();
          else if (line.startsWith("data:")) data = true;
        }
        if (id !== null) this.lastIds.set(path, id);
        if (data) this.wake();
      }
    }
  }
}

let documented = null;

/** The paths the server's OpenAPI document lists (read once per page load). */
function streamPaths(api) {
  if (!documented) {
    documented = fetch(api.url("/openapi.json"), { cache: "no-store", credentials: "omit" })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .then((doc) => new Set(Object.keys(doc.paths || {})))
      .catch(() => new Set());
  }
  return documented;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
