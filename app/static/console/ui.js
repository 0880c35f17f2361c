// Pieces of markup every view shares: times, badges, loading and error states, form fields.

import { html, nothing } from "../vendor/lit-html/lit-html.js";

export { html, nothing };
export { render } from "../vendor/lit-html/lit-html.js";

const SEVERITY_LABELS = { 0: "LOW", 1: "LOW", 2: "MEDIUM", 3: "HIGH", 4: "CRITICAL", 5: "CRITICAL" };
export const SEVERITY_CHOICES = [
  [0, "0 · low"],
  [1, "1 · low (info)"],
  [2, "2 · medium"],
  [3, "3 · high"],
  [4, "4 · critical"],
  [5, "5 · critical"],
];

/** The UTC spelling of a time, shown on hover next to the local one. */
export function utcText(iso) {
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

const localFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A time in the browser's time zone, with the UTC value on hover. */
export function timeOf(iso) {
  if (!iso) return html`<span class="muted">—</span>`;
  return html`<time datetime=${iso} title=${utcText(iso)}>${localFormat.format(new Date(iso))}</time>`;
}

/** How long ago, e.g. "4 min", with both times on hover. */
export function ageOf(iso, now = Date.now()) {
  if (!iso) return html`<span class="muted">—</span>`;
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  let text;
  if (seconds < 60) text = `${seconds} s`;
  else if (seconds < 3600) text = `${Math.floor(seconds / 60)} min`;
  else if (seconds < 86400) text = `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  else text = `${Math.floor(seconds / 86400)} d`;
  return html`<time datetime=${iso} title=${`${localFormat.format(new Date(iso))} (${utcText(iso)})`}>${text}</time>`;
}

export function severityBadge(severity, label) {
  const name = label || SEVERITY_LABELS[severity] || "LOW";
  return html`<span class="badge sev-${name.toLowerCase()}" title=${`severity ${severity}`}>${name}</span>`;
}

export function statusBadge(status) {
  return html`<span class="status status-${String(status).toLowerCase()}">${status}</span>`;
}

export function loading(what = "Loading") {
  return html`<p class="state loading" role="status"><span class="spinner" aria-hidden="true"></span>${what}…</p>`;
}

/** An error state with what the server said and, when given, a way to try again. */
export function failure(error, retry) {
  return html`<div class="state error" role="alert">
    <p>${error?.message || String(error)}</p>
    ${retry ? html`<button type="button" @click=${retry}>Try again</button>` : nothing}
  </div>`;
}

/** A feature this server does not have yet (its endpoint answered 404), and how we know. */
export function unavailable(feature, reason) {
  return html`<div class="state unavailable" data-unavailable>
    <p><strong>${feature} is not available on this server.</strong></p>
    <p class="muted">${reason}</p>
  </div>`;
}

export function empty(text) {
  return html`<p class="state empty muted">${text}</p>`;
}

/**
 * The API's 422 `errors` (`[{field, message}]`) sorted to the form's fields: each goes to the
 * field whose name is the longest prefix of its path (`config.recipients.to.0` belongs to
 * `config.recipients.to`); the rest are shown above the form.
 */
export function sortErrors(errors, fieldNames) {
  const byField = new Map();
  const unmatched = [];
  for (const error of errors) {
    const path = String(error.field ?? "");
    let best = null;
    for (const name of fieldNames) {
      if ((path === name || path.startsWith(`${name}.`)) && (!best || name.length > best.length)) best = name;
    }
    if (best) byField.set(best, [...(byField.get(best) || []), error.message]);
    else unmatched.push(error);
  }
  return { byField, unmatched };
}

/** The error text under one field, tied to its input by `aria-describedby`. */
export function fieldError(id, messages) {
  if (!messages || messages.length === 0) return nothing;
  return html`<p class="field-error" id=${`${id}-error`} role="alert">${messages.join("; ")}</p>`;
}

/** The messages above a form: the request's detail, and errors that name no field here. */
export function formSummary(problem) {
  if (!problem) return nothing;
  const unmatched = problem.unmatched || [];
  return html`<div class="form-summary" role="alert">
    <p>${problem.message}</p>
    ${unmatched.length
      ? html`<ul>${unmatched.map((item) => html`<li><code>${item.field || "body"}</code>: ${item.message}</li>`)}</ul>`
      : nothing}
  </div>`;
}

/** Pretty JSON for a details or payload block. */
export function jsonBlock(value) {
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

/** Turn "a, b\nc" into ["a", "b", "c"]. */
export function splitList(text) {
  return String(text || "")
    .split(/[\n,]/)
    .map((item) => item.trim())
    .filter(Boolean);
}

/** A scroll box around a wide table, so a phone scrolls the table, not the page. */
export function tableBox(content) {
  return html`<div class="table-box">${content}</div>`;
}

/** The local value of an <input type="datetime-local"> for an ISO time. */
export function localInputValue(date) {
  const pad = (number) => String(number).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
