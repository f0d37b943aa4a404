// Pipeline detail: its DAG coloured by job state, the jobs, their live
// logs and the pipeline's events, all updated from the live feed.
import { get, ndjson, send } from "../api.js";
import { render as renderDAG } from "../dag.js";
import { Feed } from "../live.js";
import { eventSummary } from "./events.js";
import { TERMINAL, badge, duration, errorBox, fmtClock, fmtTime, h, shortId } from "../util.js";

export function mount(root, params) {
  const id = params[0];
  let feed = null;
  let logAbort = null;
  let pipeline = null;
  const jobs = new Map(); // name -> job
  let dag = null;

  const head = h("div", { class: "view-head" });
  const meta = h("dl", { class: "meta" });
  const dagBox = h("div", { class: "panel dag-wrap" });
  const jobsBody = h("tbody", {});
  const logBox = h("div", { class: "log", role: "log", "aria-live": "polite" });
  const follow = h("input", { type: "checkbox", checked: true, id: "follow-logs" });
  const evList = h("ol", { class: "events compact" });
  const status = h("div", {});
  root.append(status);

  const jobTable = h("table", { class: "list jobs" },
    h("thead", {}, h("tr", {}, ["Job", "State", "Attempt", "Node", "Started", "Duration", "Why"].map((t) => h("th", { text: t })))),
    jobsBody);

  function renderHead() {
    const p = pipeline;
    const running = !TERMINAL.has(p.state);
    const cancel = h("button", { class: "btn danger", id: "cancel", hidden: !running, text: "Cancel pipeline" });
    let armed = null;
    cancel.onclick = async () => {
      if (!armed) { // ask once more: a stray click must not cancel a build
        cancel.textContent = "Click again to cancel";
        cancel.classList.add("armed");
        armed = setTimeout(() => { armed = null; cancel.textContent = "Cancel pipeline"; cancel.classList.remove("armed"); }, 4000);
        return;
      }
      clearTimeout(armed);
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      try {
        await send("POST", `/v1/pipelines/${p.id}/cancel`);
      } catch (e) {
        status.replaceChildren(errorBox("Cancel failed:", e));
        cancel.disabled = false;
        cancel.textContent = "Cancel pipeline";
      }
    };
    const again = h("button", { class: "btn", text: "Run again", hidden: running, onclick: () => rerun(p) });
    head.replaceChildren(
      h("h1", {}, p.name, " ", badge(p.state)),
      h("div", { class: "actions" }, again, cancel));
    meta.replaceChildren(
      h("dt", { text: "ID" }), h("dd", { class: "mono", text: p.id }),
      h("dt", { text: "Submitted" }), h("dd", { text: fmtTime(p.submitted_at) }),
      h("dt", { text: "Duration" }), h("dd", { class: "p-duration", text: duration(p.submitted_at, p.finished_at) }),
      h("dt", { text: "Jobs" }), h("dd", { text: String(p.job_ids.length) }));
  }

  async function rerun(p) {
    try {
      const spec = { name: p.spec.name, env: p.spec.env, jobs: {} };
      for (const j of p.spec.jobs) {
        const { name, ...rest } = j;
        spec.jobs[name] = rest;
      }
      const np = await send("POST", "/v1/pipelines", spec);
      location.hash = `#/pipelines/${np.id}`;
    } catch (e) {
      status.replaceChildren(errorBox("Could not submit again:", e));
    }
  }

  function jobRow(j) {
    const why = j.explain || j.reason || "";
    return h("tr", { dataset: { job: j.name, state: j.state } },
      h("td", { "data-label": "Job" }, h("a", { href: `#/jobs/${j.id}`, class: "strong", text: j.name })),
      h("td", { "data-label": "State" }, badge(j.state)),
      h("td", { "data-label": "Attempt", text: String(j.attempt) }),
      h("td", { "data-label": "Node", class: "mono small" }, j.node_id ? h("a", { href: "#/nodes", text: shortId(j.node_id) }) : "—"),
      h("td", { "data-label": "Started", text: fmtTime(j.started_at) }),
      h("td", { "data-label": "Duration", text: duration(j.started_at, j.finished_at) }),
      h("td", { "data-label": "Why", class: "why" }, why ? h("span", { class: j.explain ? "explain" : "", text: why }) : "—"));
  }

  function renderJobs() {
    jobsBody.replaceChildren(...[...jobs.values()].map(jobRow));
  }

  function upsertJob(j) {
    const cur = jobs.get(j.name);
    if (cur && cur.modify_index > j.modify_index) return;
    jobs.set(j.name, j);
    dag?.update([j]);
    const tr = jobsBody.querySelector(`tr[data-job="${CSS.escape(j.name)}"]`);
    if (tr) tr.replaceWith(jobRow(j));
  }

  function addEvent(e) {
    evList.prepend(h("li", { class: "ev" },
      h("time", { text: fmtClock(e.time) }), " ",
      h("span", { class: `topic t-${e.topic.split(".")[1]}`, text: e.type }), " ",
      h("span", { class: "muted", text: eventSummary(e) })));
    while (evList.children.length > 200) evList.lastChild.remove();
  }

  function addLog(l) {
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
    logBox.append(h("div", { class: `line ${l.stream === "stderr" ? "stderr" : ""}`, dataset: { job: l.job_name || "" } },
      h("time", { text: fmtClock(l.time) }),
      h("span", { class: "src", text: `${l.job_name || shortId(l.job_id)}/${l.step}${l.attempt > 1 ? "#" + l.attempt : ""}` }),
      h("span", { class: "txt", text: l.line })));
    if (follow.checked && atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  async function followLogs() {
    logAbort?.abort();
    logAbort = new AbortController();
    logBox.replaceChildren();
    try {
      await ndjson(`/v1/pipelines/${id}/logs?follow=true`, logAbort.signal, addLog);
      if (!logBox.children.length) logBox.append(h("p", { class: "muted", text: "No output." }));
      logBox.append(h("div", { class: "line end", text: "— end of logs —" }));
    } catch (e) {
      if (e.name !== "AbortError") logBox.append(errorBox("Logs:", e, followLogs));
    }
  }

  async function load() {
    const { data, index } = await get(`/v1/pipelines/${id}`);
    pipeline = data;
    jobs.clear();
    for (const j of data.jobs) jobs.set(j.name, j);
    renderHead();
    dag = renderDAG(data.jobs, (j) => { location.hash = `#/jobs/${j.id}`; });
    dagBox.replaceChildren(dag.svg);
    renderJobs();
    return index;
  }

  async function start() {
    try {
      await load();
    } catch (e) {
      status.replaceChildren(errorBox(e.status === 404 ? "No such pipeline:" : "Could not load the pipeline:", e,
        e.status === 404 ? null : start));
      return;
    }
    status.replaceChildren();
    root.append(head, meta,
      h("section", {}, h("h2", { text: "Graph" }), dagBox),
      h("section", {}, h("h2", { text: "Jobs" }), h("div", { class: "table-wrap" }, jobTable)),
      h("section", {}, h("div", { class: "section-head" }, h("h2", { text: "Logs" }),
        h("label", { class: "small" }, follow, " follow")), logBox),
      h("section", {}, h("h2", { text: "Events" }), evList));
    followLogs();
    // Replay this pipeline's events from its creation, then go live.
    feed = new Feed({
      topics: ["pipelines", "jobs", "events"], pipeline: pipeline.id, index: Math.max(0, pipeline.create_index - 1),
      onMessage: (m) => {
        if (m.type === "job") upsertJob(m.job);
        else if (m.type === "pipeline" && m.pipeline.id === pipeline.id) {
          if (m.pipeline.modify_index < pipeline.modify_index) return;
          const changed = m.pipeline.state !== pipeline.state;
          Object.assign(pipeline, { state: m.pipeline.state, finished_at: m.pipeline.finished_at, modify_index: m.pipeline.modify_index });
          if (changed) renderHead();
        } else if (m.type === "event") addEvent(m.event);
      },
      onResync: async () => {
        const idx = await load();
        return idx;
      },
    });
  }
  start();
  const tick = setInterval(() => {
    if (!pipeline || TERMINAL.has(pipeline.state)) return;
    const d = meta.querySelector(".p-duration");
    if (d) d.textContent = duration(pipeline.submitted_at, pipeline.finished_at);
    for (const tr of jobsBody.children) {
      const j = jobs.get(tr.dataset.job);
      if (j && !TERMINAL.has(j.state)) tr.querySelector('[data-label="Duration"]').textContent = duration(j.started_at, j.finished_at);
    }
  }, 1000);
  return () => {
    feed?.close();
    logAbort?.abort();
    clearInterval(tick);
  };
}
