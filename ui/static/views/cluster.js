// Cluster: servers, leader, Raft index, members, the events table and the
// NATS bus, as the server serving this page sees them.
import { get } from "../api.js";
import { Feed } from "../live.js";
import { badge, debounce, errorBox, h } from "../util.js";

export function mount(root) {
  const body = h("div", {});
  root.append(h("div", { class: "view-head" }, h("h1", { text: "Cluster" })), body);
  let feed = null;

  const kv = (pairs) => h("dl", { class: "meta" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));

  async function load() {
    try {
      const { data: c } = await get("/v1/ui/cluster");
      const members = c.members || [];
      const nats = c.events?.nats;
      body.replaceChildren(
        h("div", { class: "cards" },
          h("article", { class: "card" }, h("header", {}, h("h3", { text: "Raft" })), kv([
            ["Leader", c.leader ? h("span", { class: "mono", text: c.leader }) : h("span", { class: "bad", text: "none — no quorum?" })],
            ["This server", `${c.server} (${c.raft_state.toLowerCase()})`],
            ["Raft index", h("span", { class: "mono", id: "raft-index", text: String(c.raft_index) })],
            ["State index", h("span", { class: "mono", text: String(c.state_index) })],
          ])),
          h("article", { class: "card" }, h("header", {}, h("h3", { text: "Events" })), kv([
            ["Kept in state", `${c.events.kept} (indexes ${c.events.oldest_index}–${c.events.latest_index})`],
            c.events.pruned_through ? ["Pruned through", String(c.events.pruned_through)] : null,
            ["NATS", nats ? h("span", { class: "mono", text: `${nats.url}${nats.embedded ? " (embedded)" : ""}` }) : "not configured"],
            nats ? ["Stream", `${nats.stream}: ${nats.messages} messages${nats.connected ? "" : " — disconnected"}`] : null,
            nats?.publisher ? ["Published", `${nats.publisher.published} through ${nats.publisher.last.index}-${nats.publisher.last.seq}` +
              (nats.publisher.errors ? `, ${nats.publisher.errors} errors (${nats.publisher.last_error})` : "")] : null,
            nats?.error ? ["Error", h("span", { class: "bad", text: nats.error })] : null,
          ]))),
        h("section", {}, h("h2", { text: "Servers" }), members.length
          ? h("div", { class: "table-wrap" }, h("table", { class: "list" },
            h("thead", {}, h("tr", {}, ["Name", "Address", "Status", "Raft", "Voter", "HTTP"].map((t) => h("th", { text: t })))),
            h("tbody", {}, members.map((m) => h("tr", {},
              h("td", { "data-label": "Name" }, m.name, m.leader ? h("span", { class: "tag ok", text: "leader" }) : null),
              h("td", { "data-label": "Address", class: "mono small", text: m.addr }),
              h("td", { "data-label": "Status" }, badge(m.status.toUpperCase())),
              h("td", { "data-label": "Raft", text: m.raft_state }),
              h("td", { "data-label": "Voter", text: m.voter ? "yes" : "no" }),
              h("td", { "data-label": "HTTP", class: "mono small", text: m.http_addr || "—" }))))))
          : h("p", { class: "muted", text: "This server reports no members." })));
    } catch (e) {
      body.replaceChildren(errorBox("Could not load the cluster:", e, load));
    }
  }
  const refresh = debounce(load, 500);
  load();
  // Refresh on committed changes, and now and then for membership.
  feed = new Feed({ topics: ["events"], index: 0, onMessage: refresh, onResync: async () => { load(); return 0; } });
  const tick = setInterval(load, 10000);
  return () => {
    feed.close();
    refresh.cancel();
    clearInterval(tick);
  };
}
