// Events: the live feed of committed domain events.
import { get } from "../api.js";
import { Feed } from "../live.js";
import { empty, errorBox, fmtClock, h, shortId } from "../util.js";

// eventSummary is one line about an event's payload.
export function eventSummary(e) {
  const p = e.payload || {};
  switch (e.topic.split(".").slice(1, 3).join(".")) {
    case "pipeline.job":
      return `${p.name} ${(p.state || "").toLowerCase()}${p.attempt > 1 ? " (attempt " + p.attempt + ")" : ""}${p.reason ? ": " + p.reason : ""}`;
    case "pipeline.step":
      return `${p.job}/${p.step} ${(p.state || "").toLowerCase()}${p.exit_code !== undefined ? " exit " + p.exit_code : ""}`;
    case "scheduler.offer":
      return `${p.job} → node ${shortId(p.node_id)} (score ${(p.score ?? 0).toFixed(2)})`;
    case "scheduler.assignment":
      return `${p.job} on node ${shortId(p.node_id)}: ${p.resources?.cpu ?? 0}m, ${p.resources?.memory ?? 0} MiB`;
    case "scheduler.capacity":
      return `${p.name} ${p.status}: ${p.resources?.cpu}m, ${p.resources?.memory} MiB`;
    case "provider.worker":
      return `worker ${shortId(e.key)} of ${p.job_name || "job " + shortId(p.job)} ${p.client_status}${p.reason ? ": " + p.reason : ""}`;
  }
  return "";
}

function keyLink(e) {
  if (e.job_id) return h("a", { href: `#/jobs/${e.job_id}`, class: "mono", text: shortId(e.job_id) });
  if (e.node_id) return h("a", { href: "#/nodes", class: "mono", text: shortId(e.node_id) });
  return h("span", { class: "mono", text: shortId(e.key) });
}

export function mount(root, params, query) {
  const rows = h("tbody", {});
  const filter = h("input", { type: "search", class: "search", placeholder: "Topic prefix, e.g. domain.pipeline.job",
    value: query.get("topic") || "", "aria-label": "topic filter" });
  const pause = h("button", { class: "btn", text: "Pause" });
  const body = h("div", {});
  let paused = false;
  const held = [];
  let feed = null;
  root.append(h("div", { class: "view-head" }, h("h1", { text: "Events" })),
    h("div", { class: "toolbar" }, filter, pause), body);
  const table = h("table", { class: "list events-table" },
    h("thead", {}, h("tr", {}, ["Time", "Index", "Topic", "Key", "What"].map((t) => h("th", { text: t })))), rows);

  const visible = (e) => !filter.value.trim() || e.topic.startsWith(filter.value.trim());
  function add(e) {
    if (!visible(e)) return;
    if (!rows.children.length) body.replaceChildren(h("div", { class: "table-wrap" }, table));
    rows.prepend(h("tr", { dataset: { topic: e.topic } },
      h("td", { "data-label": "Time", class: "mono small", text: fmtClock(e.time) }),
      h("td", { "data-label": "Index", class: "mono small", text: `${e.index}-${e.seq}` }),
      h("td", { "data-label": "Topic" }, h("span", { class: `topic t-${e.topic.split(".")[1]}`, text: e.topic })),
      h("td", { "data-label": "Key" }, keyLink(e)),
      h("td", { "data-label": "What", text: eventSummary(e) })));
    while (rows.children.length > 500) rows.lastChild.remove();
  }
  pause.onclick = () => {
    paused = !paused;
    pause.textContent = paused ? `Resume (${held.length})` : "Pause";
    if (!paused) held.splice(0).forEach(add);
  };
  filter.addEventListener("change", () => start());

  async function start() {
    feed?.close();
    rows.replaceChildren();
    body.replaceChildren(empty("No events yet.", "Events appear here as the cluster commits them."));
    let from = 0;
    try {
      // Replay the last few hundred Raft entries' events, then go live.
      const { data } = await get("/v1/ui/cluster");
      if (data.events.latest_index) from = Math.max(data.events.oldest_index - 1, data.events.latest_index - 300, 0);
    } catch (e) {
      body.replaceChildren(errorBox("Could not reach the server:", e, start));
      return;
    }
    feed = new Feed({
      topics: ["events"], index: from,
      onMessage: (m) => {
        if (m.type !== "event") return;
        if (paused) {
          held.push(m.event);
          pause.textContent = `Resume (${held.length})`;
        } else add(m.event);
      },
      onResync: async () => { rows.replaceChildren(); return 0; },
    });
  }
  start();
  return () => feed?.close();
}
