// Job detail: state, attempts, steps with timings, the scheduler's
// explanation while it waits, and its step logs following live.
import { get, ndjson } from "../api.js";
import { Feed } from "../live.js";
import { TERMINAL, badge, duration, errorBox, fmtClock, fmtTime, h, shortId } from "../util.js";

export function mount(root, params) {
  const id = params[0];
  let job = null;
  let feed = null;
  let logAbort = null;
  let lastSeq = 0;
  const status = h("div", {});
  const head = h("div", { class: "view-head" });
  const meta = h("dl", { class: "meta" });
  const explain = h("div", {});
  const steps = h("ol", { class: "steps" });
  const history = h("tbody", {});
  const logBox = h("div", { class: "log", role: "log" });
  const follow = h("input", { type: "checkbox", checked: true });
  root.append(status);

  function render() {
    const j = job;
    head.replaceChildren(h("h1", {}, j.name, " ", badge(j.state)),
      h("div", { class: "actions" }, h("a", { class: "btn", href: `#/pipelines/${j.pipeline_id}`, text: "Pipeline" })));
    meta.replaceChildren(
      h("dt", { text: "ID" }), h("dd", { class: "mono", text: j.id }),
      h("dt", { text: "Attempt" }), h("dd", { text: `${j.attempt}${j.spec?.retry?.attempts ? " of " + (j.spec.retry.attempts + 1) : ""}` }),
      h("dt", { text: "Node" }), h("dd", { class: "mono", text: j.node_id || "—" }),
      h("dt", { text: "Created" }), h("dd", { text: fmtTime(j.created_at) }),
      h("dt", { text: "Started" }), h("dd", { text: fmtTime(j.started_at) }),
      h("dt", { text: "Duration" }), h("dd", { class: "j-duration", text: duration(j.started_at, j.finished_at) }),
      j.reason ? [h("dt", { text: "Reason" }), h("dd", { text: j.reason })] : null);
    explain.replaceChildren(j.explain
      ? h("div", { class: "explain-box" }, h("strong", { text: "Why is it pending? " }), h("span", { text: j.explain }))
      : []);
    steps.replaceChildren(...(j.steps || []).map((st) => h("li", { class: `step st-${st.state.toLowerCase()}`, dataset: { step: st.name } },
      h("span", { class: "step-dot" }),
      h("span", { class: "step-name", text: st.name }), " ", badge(st.state),
      h("span", { class: "muted small", text: ` ${duration(st.started_at, st.finished_at)}` }),
      st.exit_code !== undefined && st.exit_code !== null ? h("span", { class: "muted small", text: ` exit ${st.exit_code}` }) : null,
      st.reason ? h("div", { class: "small muted", text: st.reason }) : null)));
    history.replaceChildren(...(j.history || []).map((a) => h("tr", {},
      h("td", { "data-label": "Attempt", text: String(a.attempt) }), h("td", { "data-label": "State" }, badge(a.state)),
      h("td", { "data-label": "Node", class: "mono small", text: shortId(a.node_id) || "—" }),
      h("td", { "data-label": "Started", text: fmtTime(a.started_at) }),
      h("td", { "data-label": "Duration", text: duration(a.started_at, a.finished_at) }),
      h("td", { "data-label": "Reason", text: (a.reason || "—") + attemptKind(a) }))));
    if (!history.children.length) history.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No attempt has ended yet." })));
  }

  function addLog(l) {
    lastSeq = Math.max(lastSeq, l.seq || 0);
    const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 8;
    logBox.querySelector(".placeholder")?.remove();
    logBox.append(h("div", { class: `line ${l.stream === "stderr" ? "stderr" : ""}` },
      h("time", { text: fmtClock(l.time) }),
      h("span", { class: "src", text: `${l.step}${l.attempt > 1 ? "#" + l.attempt : ""}` }),
      h("span", { class: "txt", text: l.line })));
    if (follow.checked && atBottom) logBox.scrollTop = logBox.scrollHeight;
  }

  async function followLogs() {
    logAbort?.abort();
    logAbort = new AbortController();
    if (!lastSeq) logBox.replaceChildren(h("p", { class: "muted placeholder", text: "Waiting for output…" }));
    try {
      await ndjson(`/v1/jobs/${id}/logs?follow=true&after=${lastSeq}`, logAbort.signal, addLog);
      logBox.querySelector(".placeholder")?.remove();
      logBox.append(h("div", { class: "line end", text: "— end of log —" }));
    } catch (e) {
      if (e.name === "AbortError") return;
      logBox.append(errorBox("Logs:", e, followLogs));
    }
  }

  async function load() {
    const { data, index } = await get(`/v1/jobs/${id}`);
    job = data;
    render();
    return index;
  }

  async function start() {
    let index;
    try {
      index = await load();
    } catch (e) {
      status.replaceChildren(errorBox(e.status === 404 ? "No such job:" : "Could not load the job:", e, e.status === 404 ? null : start));
      return;
    }
    status.replaceChildren();
    root.append(head, meta, explain,
      h("section", {}, h("h2", { text: "Steps" }), steps),
      h("section", {}, h("div", { class: "section-head" }, h("h2", { text: "Log" }), h("label", { class: "small" }, follow, " follow")), logBox),
      h("section", {}, h("h2", { text: "Attempts" }), h("div", { class: "table-wrap" }, h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Attempt", "State", "Node", "Started", "Duration", "Reason"].map((t) => h("th", { text: t })))), history))));
    followLogs();
    feed = new Feed({
      topics: ["jobs"], pipeline: job.pipeline_id, index,
      onMessage: (m) => {
        if (m.type !== "job" || m.job.id !== job.id || m.job.modify_index < job.modify_index) return;
        job = m.job;
        render();
      },
      onResync: load,
    });
  }
  start();
  const tick = setInterval(() => {
    if (job && !TERMINAL.has(job.state)) {
      const d = meta.querySelector(".j-duration");
      if (d) d.textContent = duration(job.started_at, job.finished_at);
    }
  }, 1000);
  return () => {
    feed?.close();
    logAbort?.abort();
    clearInterval(tick);
  };
}

// attemptKind says what an ended attempt led to: " · rescheduled (node-lost)"
// for an infrastructure fault, " · retried" for the job's own failure.
function attemptKind(a) {
  if (a.kind === "reschedule") return ` · rescheduled${a.cause ? ` (${a.cause})` : ""}`;
  if (a.kind === "retry") return " · retried";
  return "";
}
