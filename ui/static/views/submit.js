// Submit: paste or edit a pipeline YAML and run it.
import { h } from "../util.js";

const EXAMPLE = `name: hello
env: { GREETING: hello }
jobs:
  build:
    resources: { cpu: 250, memory: 64 }
    steps:
      - name: greet
        run: echo "$GREETING from build"
  test:
    needs: [build]
    steps:
      - name: unit
        run: echo "running unit tests"
  lint:
    needs: [build]
    steps:
      - name: vet
        run: echo "lint clean"
`;

export function mount(root) {
  const area = h("textarea", { id: "spec", class: "spec", spellcheck: "false", rows: 22, "aria-label": "pipeline YAML" });
  area.value = sessionStorage.getItem("ciplat.spec") || EXAMPLE;
  const key = h("input", { type: "text", id: "idem", placeholder: "optional Idempotency-Key", class: "search" });
  const out = h("div", { "aria-live": "polite" });
  const btn = h("button", { class: "btn primary", id: "submit", type: "submit", text: "Run pipeline" });
  const form = h("form", { class: "submit-form" },
    h("p", { class: "muted" }, "A pipeline is a DAG of jobs (", h("code", { text: "needs" }), "), each a list of steps. See docs/pipeline-spec.md."),
    area, h("div", { class: "form-row" }, key, btn,
      h("button", { class: "btn", type: "button", text: "Reset example", onclick: () => { area.value = EXAMPLE; } })),
    out);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    btn.disabled = true;
    out.replaceChildren();
    sessionStorage.setItem("ciplat.spec", area.value);
    try {
      const headers = { "Content-Type": "application/yaml" };
      if (key.value) headers["Idempotency-Key"] = key.value;
      const r = await fetch("/v1/pipelines", {
        method: "POST",
        headers,
        body: area.value,
      });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
      location.hash = `#/pipelines/${body.id}`;
    } catch (e) {
      out.replaceChildren(h("div", { class: "error-box", role: "alert" }, h("strong", { text: "The spec was refused: " }),
        h("pre", { class: "spec-error", text: e.message })));
    } finally {
      btn.disabled = false;
    }
  };
  root.append(h("div", { class: "view-head" }, h("h1", { text: "New pipeline" })), form);
  return () => {};
}
