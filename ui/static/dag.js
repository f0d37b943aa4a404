// The pipeline's DAG as SVG: jobs in columns by depth (a job sits one
// column right of the deepest job it needs), edges from each need. Jobs are
// coloured by state with CSS classes, so live updates only change classes
// and labels; the layout is computed once per pipeline.
import { s } from "./util.js";

const W = 168, H = 52, GX = 64, GY = 18, PAD = 12;

// layout returns {cols: [[job]], pos: Map(name -> {x, y}), width, height}.
export function layout(jobs) {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const depth = new Map();
  const visit = (j, stack = new Set()) => {
    if (depth.has(j.name)) return depth.get(j.name);
    if (stack.has(j.name)) return 0; // a cycle cannot be submitted; be safe
    stack.add(j.name);
    let d = 0;
    for (const n of needsOf(j)) {
      const dep = byName.get(n);
      if (dep) d = Math.max(d, visit(dep, stack) + 1);
    }
    depth.set(j.name, d);
    return d;
  };
  jobs.forEach((j) => visit(j));
  const cols = [];
  for (const j of jobs) (cols[depth.get(j.name)] ||= []).push(j);
  // One sweep of the barycentre heuristic keeps edges from crossing much.
  const row = new Map();
  cols.forEach((col, c) => {
    if (c > 0) {
      const bary = (j) => {
        const ns = needsOf(j).filter((n) => row.has(n));
        return ns.length ? ns.reduce((a, n) => a + row.get(n), 0) / ns.length : 0;
      };
      col.sort((a, b) => bary(a) - bary(b));
    }
    col.forEach((j, i) => row.set(j.name, i));
  });
  const tallest = Math.max(1, ...cols.map((c) => c.length));
  const height = PAD * 2 + tallest * H + (tallest - 1) * GY;
  const pos = new Map();
  cols.forEach((col, c) => {
    const colH = col.length * H + (col.length - 1) * GY;
    const top = (height - colH) / 2;
    col.forEach((j, i) => pos.set(j.name, { x: PAD + c * (W + GX), y: top + i * (H + GY) }));
  });
  const width = PAD * 2 + cols.length * W + (cols.length - 1) * GX;
  return { cols, pos, width, height };
}

const needsOf = (j) => j.spec?.needs || [];

// render draws the DAG; onClick(job) is called when a job box is clicked.
// It returns {svg, update(jobs)}.
export function render(jobs, onClick) {
  const { pos, width, height } = layout(jobs);
  const svg = s("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": "pipeline graph" });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "dag-arrowhead" }))));
  const edges = s("g", { class: "dag-edges" });
  const nodes = s("g", { class: "dag-nodes" });
  svg.append(edges, nodes);
  const byName = new Map();
  for (const j of jobs) {
    const p = pos.get(j.name);
    for (const n of needsOf(j)) {
      const q = pos.get(n);
      if (!q) continue;
      const x1 = q.x + W, y1 = q.y + H / 2, x2 = p.x, y2 = p.y + H / 2, mx = (x1 + x2) / 2;
      edges.append(s("path", { class: "dag-edge", "data-from": n, "data-to": j.name,
        d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 2} ${y2}`, "marker-end": "url(#arrow)" }));
    }
    const title = s("text", { x: p.x + 12, y: p.y + 21, class: "dag-name" });
    const sub = s("text", { x: p.x + 12, y: p.y + 39, class: "dag-sub" });
    const g = s("g", { class: "dag-node", tabindex: 0, role: "link", "data-job": j.name, "data-id": j.id,
      onclick: () => onClick?.(byName.get(j.name)),
      onkeydown: (e) => { if (e.key === "Enter") onClick?.(byName.get(j.name)); } },
      s("rect", { x: p.x, y: p.y, width: W, height: H, rx: 8 }),
      s("rect", { x: p.x, y: p.y, width: 6, height: H, rx: 3, class: "dag-stripe" }),
      title, sub, s("title", {}));
    nodes.append(g);
    byName.set(j.name, j);
  }
  const update = (list) => {
    for (const j of list) {
      byName.set(j.name, j);
      const g = nodes.querySelector(`[data-job="${CSS.escape(j.name)}"]`);
      if (!g) continue;
      g.setAttribute("class", `dag-node st-${j.state.toLowerCase()}`);
      g.dataset.state = j.state;
      g.querySelector(".dag-name").textContent = clip(j.name, 19);
      const attempt = j.attempt > 1 ? ` · try ${j.attempt}` : "";
      g.querySelector(".dag-sub").textContent = j.state.toLowerCase() + attempt;
      g.querySelector("title").textContent = `${j.name}: ${j.state}${j.reason ? " — " + j.reason : ""}`;
      for (const e of edges.querySelectorAll(`[data-from="${CSS.escape(j.name)}"]`)) {
        e.setAttribute("class", `dag-edge from-${j.state.toLowerCase()}`);
      }
    }
  };
  update(jobs);
  return { svg, update };
}

const clip = (t, n) => (t.length > n ? t.slice(0, n - 1) + "…" : t);
