// HTTP helpers for the /v1 API of the agent that serves the UI.

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function check(r) {
  if (r.ok) return r;
  let msg = `HTTP ${r.status}`;
  try {
    const body = await r.json();
    if (body.error) msg = body.error;
  } catch { /* not JSON */ }
  throw new APIError(r.status, msg);
}

// get returns the decoded JSON body and the X-Ciplat-Index of the answer.
export async function get(path, signal) {
  const r = await check(await fetch(path, { signal, headers: { Accept: "application/json" } }));
  return { data: await r.json(), index: Number(r.headers.get("X-Ciplat-Index")) || 0 };
}

export async function send(method, path, body, contentType = "application/json") {
  const r = await check(await fetch(path, {
    method,
    headers: { "Content-Type": contentType, Accept: "application/json" },
    body: typeof body === "string" || body === undefined ? body : JSON.stringify(body),
  }));
  return r.status === 204 ? null : r.json();
}

// ndjson calls onLine for each JSON line of a streamed answer until it
// ends or signal aborts. Empty lines (heartbeats) are skipped.
export async function ndjson(path, signal, onLine) {
  const r = await check(await fetch(path, { signal }));
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line && line !== "{}") onLine(JSON.parse(line));
    }
  }
}
