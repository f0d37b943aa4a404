// A first live view: pipelines and nodes, refreshed with blocking queries
// (the server answers when something changed; no polling interval).
const $ = (s) => document.querySelector(s);

async function follow(path, render) {
  let index = 0;
  for (;;) {
    try {
      const r = await fetch(`${path}?index=${index}&wait=60s`);
      if (!r.ok) throw new Error((await r.json()).error);
      index = Number(r.headers.get("X-Ciplat-Index")) || 0;
      render(await r.json());
    } catch (e) {
      console.warn(path, e);
      await new Promise((ok) => setTimeout(ok, 2000)); // back off after an error
    }
  }
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

follow("/v1/pipelines", (ps) => {
  const body = $("#pipelines tbody");
  body.replaceChildren(...ps.slice(0, 200).map((p) => {
    const tr = document.createElement("tr");
    const counts = Object.entries(p.job_states || {}).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(", ");
    tr.append(cell(p.id.slice(0, 8)), cell(p.name), cell(p.state, p.state), cell(counts), cell(new Date(p.submitted_at).toLocaleString()));
    return tr;
  }));
  $("#empty").hidden = ps.length > 0;
});

follow("/v1/nodes", (ns) => {
  $("#nodes tbody").replaceChildren(...ns.map((n) => {
    const tr = document.createElement("tr");
    tr.append(cell(n.name), cell(n.status), cell(`${n.allocated?.cpu ?? 0}/${n.resources.cpu} m`), cell(`${n.allocated?.memory ?? 0}/${n.resources.memory} MiB`));
    return tr;
  }));
});
