// Pipelines: the live list, filtered by state and name, a page at a time.
import { get } from "../api.js";
import { Feed } from "../live.js";
import { ago, badge, debounce, duration, empty, errorBox, h, shortId } from "../util.js";

const FILTERS = ["", "RUNNING", "PENDING", "SUCCEEDED", "FAILED", "CANCELLED"];
const JOB_ORDER = ["SUCCEEDED", "RUNNING", "SCHEDULED", "PENDING", "FAILED", "TERMINATED", "CANCELLED"];

export function mount(root, params, query) {
  const state = (query.get("state") || "").toUpperCase();
  let name = query.get("name") || "";
  let feed = null;
  let rows = new Map(); // id -> {row, tr}
  let nextToken = "";

  const chips = h("div", { class: "chips", role: "tablist" });
  const search = h("input", { type: "search", placeholder: "Filter by name or ID", value: name, "aria-label": "filter by name",
    class: "search" });
  const tbody = h("tbody", {});
  const table = h("table", { class: "list pipelines" },
    h("thead", {}, h("tr", {}, ["Pipeline", "State", "Jobs", "Submitted", "Duration"].map((t) => h("th", { text: t })))),
    tbody);
  const more = h("button", { class: "btn", text: "Load more", hidden: true, onclick: () => load(true) });
  const body = h("div", {});
  root.append(
    h("div", { class: "view-head" }, h("h1", { text: "Pipelines" }),
      h("a", { class: "btn primary", href: "#/submit", text: "New pipeline" })),
    h("div", { class: "toolbar" }, chips, search),
    body);

  const link = (st, nm) => {
    const q = new URLSearchParams();
    if (st) q.set("state", st);
    if (nm) q.set("name", nm);
    const qs = q.toString();
    return "#/pipelines" + (qs ? "?" + qs : "");
  };

  function renderChips(counts) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    chips.replaceChildren(...FILTERS.map((f) => h("a", {
      class: "chip" + (f === state ? " active" : ""), role: "tab", href: link(f, name), "aria-selected": f === state,
      dataset: { state: f || "ALL" },
    }, f ? f.toLowerCase() : "all", h("span", { class: "count", text: f ? counts[f] || 0 : total }))));
  }

  function jobBar(p) {
    const segs = JOB_ORDER.filter((s) => p.job_states?.[s]).map((s) =>
      h("span", { class: `seg st-${s.toLowerCase()}`, style: { flex: String(p.job_states[s]) }, title: `${p.job_states[s]} ${s.toLowerCase()}` }));
    const done = p.job_states?.SUCCEEDED || 0;
    return h("div", { class: "jobbar" }, h("div", { class: "jobbar-track" }, segs),
      h("span", { class: "jobbar-label", text: `${done}/${p.jobs}` }));
  }

  function rowOf(p) {
    return h("tr", { dataset: { id: p.id, state: p.state } },
      h("td", { "data-label": "Pipeline" }, h("a", { href: `#/pipelines/${p.id}`, class: "strong", text: p.name }),
        h("span", { class: "muted mono small", text: " " + shortId(p.id) })),
      h("td", { "data-label": "State" }, badge(p.state)),
      h("td", { "data-label": "Jobs" }, jobBar(p)),
      h("td", { "data-label": "Submitted", title: new Date(p.submitted_at).toLocaleString(), text: ago(p.submitted_at) }),
      h("td", { "data-label": "Duration", text: duration(p.submitted_at, p.finished_at) }));
  }

  function matches(p) {
    if (state && p.state !== state) return false;
    const n = name.trim().toLowerCase();
    return !n || p.name.toLowerCase().includes(n) || p.id.startsWith(n);
  }

  function upsert(p) {
    const cur = rows.get(p.id);
    if (cur && cur.row.modify_index > p.modify_index) return; // older news
    if (!matches(p)) {
      if (cur) {
        cur.tr.remove();
        rows.delete(p.id);
      }
      return;
    }
    const tr = rowOf(p);
    if (cur) cur.tr.replaceWith(tr);
    else {
      const newest = [...rows.values()][0];
      if (newest && newest.row.create_index > p.create_index) return; // an old one: not on this page
      tbody.prepend(tr);
    }
    rows.set(p.id, { row: p, tr });
    if (rows.size === 1) showTable();
  }

  function showTable() {
    body.replaceChildren(h("div", { class: "table-wrap" }, table), h("div", { class: "pager" }, more));
  }

  const refreshCounts = debounce(async () => {
    try {
      const { data } = await get(`/v1/ui/pipelines?per_page=1&name=${encodeURIComponent(name)}`);
      renderChips(data.state_counts);
    } catch { /* the next message tries again */ }
  }, 600);

  async function load(append) {
    const q = new URLSearchParams({ per_page: "50" });
    if (state) q.set("state", state);
    if (name) q.set("name", name);
    if (append && nextToken) q.set("next_token", nextToken);
    try {
      const { data } = await get(`/v1/ui/pipelines?${q}`);
      renderChips(data.state_counts);
      if (!append) {
        rows = new Map();
        tbody.replaceChildren();
      }
      for (const p of data.pipelines) {
        const tr = rowOf(p);
        tbody.append(tr);
        rows.set(p.id, { row: p, tr });
      }
      nextToken = data.next_token || "";
      more.hidden = !nextToken;
      if (rows.size === 0) {
        body.replaceChildren(state || name
          ? empty("No pipelines match this filter.", h("a", { href: link("", ""), text: "Show all pipelines" }))
          : empty("No pipelines yet.", "Submit one with the ", h("a", { href: "#/submit", text: "New pipeline" }),
            " form, or run ", h("code", { text: "ciplat pipeline run examples/hello.yml" }), "."));
      } else showTable();
      return data.index;
    } catch (e) {
      body.replaceChildren(errorBox("Could not load pipelines:", e, () => start()));
      throw e;
    }
  }

  async function start() {
    feed?.close();
    const index = await load(false);
    feed = new Feed({
      topics: ["pipelines"], index,
      onMessage: (m) => {
        if (m.type !== "pipeline") return;
        upsert(m.pipeline);
        refreshCounts();
      },
      onResync: () => load(false),
    });
  }

  search.addEventListener("input", debounce(() => {
    name = search.value;
    history.replaceState(null, "", link(state, name));
    start().catch(() => {});
  }, 300));
  renderChips({});
  start().catch(() => {});
  const tick = setInterval(() => {
    for (const { row, tr } of rows.values()) {
      tr.children[3].textContent = ago(row.submitted_at);
      if (!row.finished_at || row.finished_at.startsWith("0001-")) tr.children[4].textContent = duration(row.submitted_at, row.finished_at);
    }
  }, 5000);
  return () => {
    feed?.close();
    refreshCounts.cancel();
    clearInterval(tick);
  };
}
