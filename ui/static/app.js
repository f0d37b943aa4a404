// ciplat web UI: a hash router over the views, and the header's leader and
// connection indicators. Plain ES modules, no build step.
import { get } from "./api.js";
import { onStatus } from "./live.js";
import { $, h } from "./util.js";
import * as cluster from "./views/cluster.js";
import * as events from "./views/events.js";
import * as job from "./views/job.js";
import * as nodes from "./views/nodes.js";
import * as pipeline from "./views/pipeline.js";
import * as pipelines from "./views/pipelines.js";
import * as submit from "./views/submit.js";

const routes = [
  [/^\/pipelines\/([^/]+)$/, pipeline, "pipelines"],
  [/^\/jobs\/([^/]+)$/, job, "pipelines"],
  [/^\/(?:pipelines)?$/, pipelines, "pipelines"],
  [/^\/nodes$/, nodes, "nodes"],
  [/^\/cluster$/, cluster, "cluster"],
  [/^\/events$/, events, "events"],
  [/^\/submit$/, submit, "submit"],
];

let dispose = null;

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  const query = new URLSearchParams(qs || "");
  dispose?.();
  dispose = null;
  const main = $("#main");
  main.replaceChildren();
  for (const [re, view, tab] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === tab);
    dispose = view.mount(main, m.slice(1).map(decodeURIComponent), query);
    window.scrollTo(0, 0);
    return;
  }
  main.append(h("div", { class: "empty" }, h("p", { class: "empty-title", text: "Nothing here." }),
    h("a", { href: "#/", text: "Back to the pipelines" })));
}

async function leader() {
  try {
    const { data } = await get("/v1/status/leader");
    $("#leader").textContent = data ? `leader ${data}` : "no leader";
    $("#leader").classList.toggle("bad", !data);
  } catch {
    $("#leader").textContent = "server unreachable";
    $("#leader").classList.add("bad");
  }
}

onStatus((s) => {
  const el = $("#conn");
  el.dataset.status = s;
  el.title = s === "live" ? "live: updates arrive as they commit" : "reconnecting to the live feed…";
  el.lastChild.textContent = s;
});

window.addEventListener("hashchange", route);
route();
leader();
setInterval(leader, 10000);
