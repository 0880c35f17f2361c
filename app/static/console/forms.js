// Form fields described as data: rendered with a label, help and error slot, read back as the
// JSON values the API takes, and checked in the browser with the inputs' own constraints.

import { fieldError, html, nothing, splitList } from "./ui.js";

export function fieldId(name) {
  return `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

function describedBy(id, spec, errors) {
  const ids = [];
  if (spec.help || spec.stored) ids.push(`${id}-help`);
  if (errors?.length) ids.push(`${id}-error`);
  return ids.join(" ") || nothing;
}

function pairsText(value) {
  return Object.entries(value || {})
    .map(([name, item]) => `${name}: ${item}`)
    .join("\n");
}

// An example value, unless the field cannot be edited (a viewer could take it for the value).
function placeholder(spec) {
  if (spec.stored) return "stored (hidden); type to replace";
  return (!spec.disabled && spec.placeholder) || nothing;
}

function control(spec, value, id, errors) {
  const common = {
    id,
    described: describedBy(id, spec, errors),
    invalid: errors?.length ? "true" : "false",
    disabled: Boolean(spec.disabled),
  };
  switch (spec.kind) {
    case "select":
      return html`<select id=${id} name=${spec.name} ?required=${spec.required} ?disabled=${common.disabled}
          aria-describedby=${common.described} aria-invalid=${common.invalid}>
        ${spec.options.map(([optionValue, label]) => html`<option value=${optionValue} ?selected=${String(value ?? spec.default ?? "") === String(optionValue)}>${label}</option>`)}
      </select>`;
    case "checkbox":
      return html`<input id=${id} name=${spec.name} type="checkbox" ?checked=${value ?? spec.default ?? false} ?disabled=${common.disabled}
          aria-describedby=${common.described}>`;
    case "checkboxes":
      return html`<div class="choices" id=${id} role="group" aria-describedby=${common.described}>
        ${spec.options.map(([optionValue, label]) => html`<label class="choice"><input type="checkbox" name=${spec.name} value=${optionValue}
            ?checked=${(value ?? spec.default ?? []).map(String).includes(String(optionValue))} ?disabled=${common.disabled}>${label}</label>`)}
      </div>`;
    case "textarea":
    case "pairs":
    case "list":
      return html`<textarea id=${id} name=${spec.name} rows=${spec.rows || (spec.kind === "textarea" ? 4 : 2)} ?required=${spec.required}
          ?disabled=${common.disabled} placeholder=${placeholder(spec)} aria-describedby=${common.described} aria-invalid=${common.invalid}
          .value=${spec.kind === "pairs" ? pairsText(value) : spec.kind === "list" ? (value || []).join(", ") : (value ?? "")}></textarea>`;
    default: {
      const type = spec.kind === "password" ? "password" : spec.kind || "text";
      return html`<input id=${id} name=${spec.name} type=${type} ?required=${spec.required && !spec.stored} ?disabled=${common.disabled}
          min=${spec.min ?? nothing} max=${spec.max ?? nothing} step=${spec.step ?? nothing} pattern=${spec.pattern || nothing}
          placeholder=${placeholder(spec)}
          autocomplete=${spec.kind === "password" ? "new-password" : "off"} aria-describedby=${common.described} aria-invalid=${common.invalid}
          .value=${spec.kind === "password" ? "" : value === undefined || value === null ? "" : String(value)}>`;
    }
  }
}

/** One labelled field: the control, its help text and the errors the browser or the API gave it. */
export function field(spec, value, errors) {
  const id = fieldId(spec.name);
  const label = html`${spec.label}${spec.required ? html`<span class="required" aria-hidden="true"> *</span>` : nothing}${spec.secret
    ? html` <span class="secret-tag" title="write-only: never shown again once saved">secret</span>`
    : nothing}`;
  const helpText = [spec.help, spec.stored ? "A value is stored and stays hidden: leave this empty to keep it, type to replace it." : ""]
    .filter(Boolean)
    .join(" ");
  const help = helpText ? html`<p class="help" id=${`${id}-help`}>${helpText}</p>` : nothing;
  if (spec.kind === "checkbox") {
    return html`<div class="field field-checkbox ${errors?.length ? "has-error" : ""}">
      <label for=${id}>${control(spec, value, id, errors)} ${label}</label>${help}${fieldError(id, errors)}</div>`;
  }
  if (spec.kind === "checkboxes") {
    return html`<fieldset class="field ${errors?.length ? "has-error" : ""}"><legend>${label}</legend>
      ${control(spec, value, id, errors)}${help}${fieldError(id, errors)}</fieldset>`;
  }
  return html`<div class="field ${errors?.length ? "has-error" : ""}">
    <label for=${id}>${label}</label>${control(spec, value, id, errors)}${help}${fieldError(id, errors)}</div>`;
}

function parsePairs(text) {
  const pairs = {};
  for (const line of String(text).split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at < 1) return null;
    pairs[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return pairs;
}

/**
 * The value of one field as the API takes it, or undefined when it is left empty. Pairs that do
 * not parse mark their textarea invalid, so the browser check reports them.
 */
export function readField(form, spec) {
  if (spec.kind === "checkboxes") {
    const values = [...form.querySelectorAll(`input[name="${spec.name}"]:checked`)].map((input) => input.value);
    return spec.numeric ? values.map(Number) : values;
  }
  const element = form.elements.namedItem(spec.name);
  if (!element) return undefined;
  if (spec.kind === "checkbox") return element.checked;
  const raw = element.value.trim();
  if (spec.kind === "pairs") {
    const pairs = parsePairs(raw);
    element.setCustomValidity(pairs ? "" : "Write one header per line as Name: value");
    return pairs && Object.keys(pairs).length ? pairs : undefined;
  }
  if (raw === "") return undefined;
  if (spec.kind === "list") return splitList(raw);
  if (spec.kind === "number" || spec.numeric) return Number(raw);
  if (spec.kind === "datetime-local") return new Date(raw).toISOString();
  return raw;
}

/** The browser's own verdict on each field (required, type, pattern, min, max), by name. */
export function browserErrors(form) {
  const byField = new Map();
  for (const element of form.elements) {
    if (!element.name || element.disabled || element.checkValidity()) continue;
    byField.set(element.name, [element.validationMessage]);
  }
  return byField;
}

/** Set `value` at a dotted path inside `target` (`smtp.port`). */
export function setPath(target, path, value) {
  const parts = path.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== "object" || node[part] === null) node[part] = {};
    node = node[part];
  }
  node[parts[parts.length - 1]] = value;
}

/** The value at a dotted path, or undefined. */
export function getPath(source, path) {
  return path.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), source);
}
