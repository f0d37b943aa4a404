// The live feed: one WebSocket to /v1/ws per view. It subscribes to topics
// from an index (the X-Ciplat-Index of the data the view rendered), hands
// every message to the view, reconnects with backoff and resumes from the
// last index it saw. When the server answers "resync" (the view fell too
// far behind) the view reloads its data and the feed starts again from the
// new index.

const listeners = new Set();
let status = "connecting";

// onStatus registers fn(status) for the header's connection indicator.
export function onStatus(fn) {
  listeners.add(fn);
  fn(status);
  return () => listeners.delete(fn);
}

function setStatus(s) {
  status = s;
  for (const fn of listeners) fn(s);
}

export class Feed {
  // opts: {topics, pipeline, index, onMessage(msg), onResync() -> Promise<index>}
  constructor(opts) {
    this.opts = opts;
    this.index = opts.index || 0;
    this.closed = false;
    this.backoff = 250;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/v1/ws`);
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ subscribe: this.opts.topics, index: this.index, pipeline: this.opts.pipeline || "" }));
    };
    ws.onmessage = async (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "subscribed") {
        this.backoff = 250;
        setStatus("live");
        return;
      }
      if (msg.type === "resync") {
        this.resyncing = true;
        ws.close();
        try {
          const idx = await this.opts.onResync?.();
          if (typeof idx === "number") this.index = idx;
        } catch (e) {
          console.warn("resync", e);
        }
        this.resyncing = false;
        this.connect();
        return;
      }
      if (msg.index > this.index) this.index = msg.index;
      this.opts.onMessage(msg);
    };
    ws.onclose = () => {
      if (this.closed || this.resyncing) return;
      setStatus("reconnecting");
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
    ws.onerror = () => setStatus("reconnecting");
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }
}
