// Small DOM and formatting helpers shared by the views.

export const $ = (sel, root = document) => root.querySelector(sel);

// h builds an element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child).
// Attributes starting with "on" become listeners; style takes an object
// ({width: "5%"}); null/false children are skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

// s is h for SVG elements.
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    // Styles go through the CSSOM: the Content-Security-Policy refuses
    // style attributes (style-src-attr), not el.style.
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TERMINATED"]);
export const STATES = ["PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TERMINATED"];

// badge is a coloured state label.
export function badge(state) {
  return h("span", { class: `badge st-${(state || "unknown").toLowerCase()}`, text: state || "?" });
}

export const shortId = (id) => (id || "").slice(0, 8);

const zero = (t) => !t || t.startsWith("0001-");

export function fmtTime(t) {
  if (zero(t)) return "—";
  const d = new Date(t);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export function fmtClock(t) {
  if (zero(t)) return "";
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

export function ago(t) {
  if (zero(t)) return "—";
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function duration(from, to) {
  if (zero(from)) return "—";
  const end = zero(to) ? Date.now() : new Date(to);
  let ms = Math.max(0, end - new Date(from));
  if (ms < 1000) return `${ms}ms`;
  let s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return `${m}m ${s}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

// debounce runs fn once, wait ms after the last call.
export function debounce(fn, wait) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), wait);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

// errorBox is the standard error state: what failed, why, and a retry.
export function errorBox(what, err, retry) {
  return h("div", { class: "error-box", role: "alert" },
    h("strong", { text: what }), " ", h("span", { text: err?.message || String(err) }),
    retry ? h("button", { class: "btn small", onclick: retry, text: "Retry" }) : null);
}

export function empty(title, ...hint) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title", text: title }), h("p", {}, ...hint));
}

// bar is a used/total meter.
export function bar(used, total, unit) {
  const pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
  const level = pct >= 90 ? "hot" : pct >= 70 ? "warm" : "ok";
  return h("div", { class: "meter", title: `${used} / ${total} ${unit} (${pct}%)` },
    h("div", { class: "meter-track" }, h("div", { class: `meter-fill ${level}`, style: { width: `${pct}%` } })),
    h("span", { class: "meter-label", text: `${used} / ${total} ${unit}` }));
}
