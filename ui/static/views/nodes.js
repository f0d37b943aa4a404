// Nodes: capacity used/total as bars, drivers, labels, status, drain.
import { get } from "../api.js";
import { Feed } from "../live.js";
import { ago, badge, bar, empty, errorBox, h, shortId } from "../util.js";

export function mount(root) {
  let feed = null;
  const nodes = new Map();
  const totals = h("div", { class: "totals" });
  const grid = h("div", { class: "cards" });
  const body = h("div", {});
  root.append(h("div", { class: "view-head" }, h("h1", { text: "Nodes" })), totals, body);

  function card(n) {
    const drivers = Object.entries(n.drivers || {}).map(([name, d]) =>
      h("span", { class: `tag ${d.healthy ? "ok" : "bad"}`, title: d.reason || (d.healthy ? "healthy" : "unhealthy"), text: name }));
    const labels = Object.entries(n.attributes || {}).filter(([k]) => k.startsWith("label.") || !k.includes("."))
      .map(([k, v]) => h("span", { class: "tag", text: `${k.replace(/^label\./, "")}=${v}` }));
    const cap = { cpu: n.resources.cpu - (n.reserved?.cpu || 0), memory: n.resources.memory - (n.reserved?.memory || 0) };
    return h("article", { class: `card node ${n.status}`, dataset: { id: n.id } },
      h("header", {}, h("h3", { text: n.name }), badge(n.status === "ready" ? (n.drain ? "DRAINING" : "READY") : "DOWN")),
      h("div", { class: "muted mono small", text: [shortId(n.id), n.address, `updated ${ago(n.status_updated_at)}`].filter(Boolean).join(" · ") }),
      h("div", { class: "meters" },
        h("label", { text: "CPU" }), bar(n.allocated?.cpu || 0, cap.cpu, "m"),
        h("label", { text: "Memory" }), bar(n.allocated?.memory || 0, cap.memory, "MiB")),
      h("div", { class: "small", text: `${n.allocs} running allocation${n.allocs === 1 ? "" : "s"}${n.eligible ? "" : " · not eligible"}` }),
      h("div", { class: "tags" }, drivers, labels));
  }

  function renderTotals(d) {
    totals.replaceChildren(
      h("div", { class: "total" }, h("span", { class: "muted", text: "Nodes " }), h("strong", { text: String(nodes.size) })),
      h("div", { class: "total grow" }, h("span", { class: "muted", text: "CPU " }), bar(d.allocated.cpu, d.capacity.cpu, "m")),
      h("div", { class: "total grow" }, h("span", { class: "muted", text: "Memory " }), bar(d.allocated.memory, d.capacity.memory, "MiB")));
  }

  function renderAll() {
    if (!nodes.size) {
      body.replaceChildren(empty("No nodes have registered.", "Start a client: ",
        h("code", { text: "ciplat agent -client -servers http://127.0.0.1:4680 -data-dir /var/lib/ciplat" })));
      return;
    }
    grid.replaceChildren(...[...nodes.values()].sort((a, b) => a.name.localeCompare(b.name)).map(card));
    body.replaceChildren(grid);
  }

  function sums() {
    const out = { capacity: { cpu: 0, memory: 0 }, allocated: { cpu: 0, memory: 0 } };
    for (const n of nodes.values()) {
      if (n.status !== "ready") continue;
      out.capacity.cpu += n.resources.cpu - (n.reserved?.cpu || 0);
      out.capacity.memory += n.resources.memory - (n.reserved?.memory || 0);
      out.allocated.cpu += n.allocated?.cpu || 0;
      out.allocated.memory += n.allocated?.memory || 0;
    }
    return out;
  }

  async function load() {
    try {
      const { data } = await get("/v1/ui/nodes");
      nodes.clear();
      for (const n of data.nodes) nodes.set(n.id, n);
      renderTotals(data);
      renderAll();
      return data.index;
    } catch (e) {
      body.replaceChildren(errorBox("Could not load nodes:", e, start));
      throw e;
    }
  }

  async function start() {
    feed?.close();
    const index = await load();
    feed = new Feed({
      topics: ["nodes"], index,
      onMessage: (m) => {
        if (m.type !== "node") return;
        nodes.set(m.node.id, m.node);
        renderTotals(sums());
        renderAll();
      },
      onResync: load,
    });
  }
  start().catch(() => {});
  return () => feed?.close();
}
