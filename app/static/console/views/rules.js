// Routing rules: the list in dispatch order, the create/edit form (filters, deliver_on,
// throttle, priority, escalation steps) and the explain form (POST /routing/explain).

import { api, listAll } from "../api.js";
import { field, readField } from "../forms.js";
import { apiMentions, channelMap, channelName } from "../store.js";
import {
  empty, failure, html, loading, nothing, SEVERITY_CHOICES, tableBox, unavailable,
} from "../ui.js";
import { FormView, View } from "../view.js";

const EVENTS = [["OPEN", "opened"], ["ACKNOWLEDGED", "acknowledged"], ["CLOSED", "closed"]];

/** Rules in the order dispatch tries them: ascending priority, then rule id. */
function dispatchOrder(rules) {
  return [...rules].sort((a, b) => a.priority - b.priority || a.rule_id - b.rule_id);
}

/** What a rule matches, in words. */
export function ruleFilters(rule) {
  const parts = [];
  if (rule.min_severity !== null && rule.min_severity !== undefined) parts.push(`severity ≥ ${rule.min_severity}`);
  if (rule.alert_type) parts.push(`type ${rule.alert_type}`);
  if (rule.device_tag_key) parts.push(`tag ${rule.device_tag_key}${rule.device_tag_val !== null && rule.device_tag_val !== undefined ? `=${rule.device_tag_val}` : ""}`);
  if (rule.site_ids?.length) parts.push(`site ${rule.site_ids.join(" or ")}`);
  if (rule.device_prefixes?.length) parts.push(`device ${rule.device_prefixes.map((prefix) => `${prefix}*`).join(" or ")}`);
  return parts.length ? parts.join(", ") : "every alert";
}

function escalationSummary(rule, channels) {
  if (!Array.isArray(rule.escalation) || rule.escalation.length === 0) return html`<span class="muted">—</span>`;
  return html`<ol class="steps">${rule.escalation.map((step) => html`<li>after ${duration(step.after_seconds)}: ${step.channel_ids.map((id) => channelName(channels, id)).join(", ")}</li>`)}</ol>`;
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

export class RulesView extends View {
  get title() {
    return "Routing rules";
  }

  constructor(...args) {
    super(...args);
    this.rules = null;
    this.channels = null;
  }

  load() {
    return this.attempt(async () => {
      [this.rules, this.channels] = await Promise.all([listAll("/routing-rules"), channelMap()]);
    });
  }

  toggle(rule) {
    return this.act(
      () => api.patch(`/routing-rules/${rule.rule_id}`, { is_enabled: !rule.is_enabled }),
      `Rule ${rule.rule_id} ${rule.is_enabled ? "disabled" : "enabled"}.`,
      () => this.load(),
    );
  }

  template() {
    return html`<section class="card">
      <div class="heading"><h1>Routing rules</h1>
        <a class="button" href="#/rules/explain">Explain an alert</a>
        ${this.canWrite ? html`<a class="button primary" href="#/rules/new">New rule</a>` : nothing}</div>
      <p class="muted">Tried in this order for every alert event; the first matching rule of a channel sends to it.</p>
      ${this.error ? failure(this.error, () => this.load()) : nothing}
      ${!this.rules && !this.error ? loading("Loading rules") : nothing}
      ${this.rules && !this.rules.length ? empty("No routing rules yet: alerts are recorded but not sent anywhere.") : nothing}
      ${this.rules?.length
        ? tableBox(html`<table class="rules stack"><thead><tr><th>Priority</th><th>Rule</th><th>Channel</th><th>Matches</th><th>Delivers on</th>
            <th>Throttle</th><th>Escalation</th><th>Enabled</th>${this.canWrite ? html`<th><span class="sr-only">Actions</span></th>` : nothing}</tr></thead>
            <tbody>${dispatchOrder(this.rules).map((rule) => html`<tr data-rule-id=${rule.rule_id}>
              <td data-label="Priority">${rule.priority}</td>
              <td><a href=${`#/rules/${rule.rule_id}`}>Rule ${rule.rule_id}</a></td>
              <td data-label="Channel"><a href=${`#/channels/${rule.channel_id}`}>${channelName(this.channels, rule.channel_id)}</a></td>
              <td data-label="Matches">${ruleFilters(rule)}</td>
              <td data-label="Delivers on">${rule.deliver_on.join(", ")}</td>
              <td data-label="Throttle">${rule.throttle_minutes ? `${rule.throttle_minutes} min` : html`<span class="muted">—</span>`}</td>
              <td data-label="Escalation">${escalationSummary(rule, this.channels)}</td>
              <td data-label="Enabled">${rule.is_enabled ? "yes" : html`<span class="status status-disabled">disabled</span>`}</td>
              ${this.canWrite ? html`<td><button type="button" @click=${() => this.toggle(rule)}>${rule.is_enabled ? "Disable" : "Enable"}</button></td>` : nothing}
            </tr>`)}</tbody></table>`)
        : nothing}
    </section>`;
  }
}

const RULE_FIELDS = (channels, canWrite) => [
  { name: "channel_id", label: "Channel", kind: "select", required: true, numeric: true, options: [["", "choose a channel…"], ...[...channels.values()].map((channel) => [channel.channel_id, `${channel.name} (${channel.channel_type})`])] },
  { name: "min_severity", label: "Minimum severity", kind: "select", numeric: true, options: [["", "any"], ...SEVERITY_CHOICES] },
  { name: "alert_type", label: "Alert type", placeholder: "e.g. overheat", help: "Empty matches every type." },
  { name: "device_tag_key", label: "Device tag", placeholder: "e.g. line" },
  { name: "device_tag_val", label: "Tag value", help: "Empty matches any value of the tag." },
  { name: "site_ids", label: "Sites", kind: "list", placeholder: "plant-1, plant-2" },
  { name: "device_prefixes", label: "Device id prefixes", kind: "list", placeholder: "pump-, valve-" },
  { name: "deliver_on", label: "Deliver when an alert is", kind: "checkboxes", options: EVENTS, default: ["OPEN"] },
  { name: "throttle_minutes", label: "Throttle (minutes)", kind: "number", min: 0, max: 10080, default: 0, help: "Within this time, one OPEN per device and alert type on this channel." },
  { name: "priority", label: "Priority", kind: "number", min: 0, max: 1000000, default: 100, help: "Lower goes first." },
  { name: "is_enabled", label: "Enabled", kind: "checkbox", default: true },
].map((spec) => ({ ...spec, disabled: !canWrite }));

export class RuleFormView extends FormView {
  get title() {
    return this.params.ruleId ? `Rule ${this.params.ruleId}` : "New rule";
  }

  constructor(...args) {
    super(...args);
    this.editing = Boolean(this.params.ruleId);
    this.rule = null;
    this.channels = null;
    this.steps = [];
    this.escalation = null;
    this.loadError = null;
  }

  async load() {
    try {
      const [channels, rule, mentioned] = await Promise.all([
        channelMap({ refresh: true }),
        this.editing ? api.get(`/routing-rules/${encodeURIComponent(this.params.ruleId)}`) : null,
        apiMentions("escalation"),
      ]);
      this.channels = channels;
      this.rule = rule;
      this.escalation = Boolean(mentioned || (rule && "escalation" in rule));
      this.steps = (rule?.escalation || []).map((step) => ({
        after: step.after_seconds % 60 === 0 ? step.after_seconds / 60 : step.after_seconds,
        unit: step.after_seconds % 60 === 0 ? 60 : 1,
        channel_ids: [...step.channel_ids],
      }));
    } catch (error) {
      this.loadError = error;
    }
    this.update();
  }

  addStep() {
    const last = this.steps[this.steps.length - 1];
    this.steps = [...this.steps, { after: last ? last.after * 2 : 15, unit: 60, channel_ids: [] }];
    this.update();
  }

  removeStep(index) {
    this.steps = this.steps.filter((_, position) => position !== index);
    this.update();
  }

  setStep(index, changes) {
    this.steps = this.steps.map((step, position) => (position === index ? { ...step, ...changes } : step));
  }

  async submit(event) {
    event.preventDefault();
    const form = event.target;
    const specs = RULE_FIELDS(this.channels, this.canWrite);
    if (!this.checked(form)) return;
    const body = {};
    for (const spec of specs) {
      const value = readField(form, spec);
      body[spec.name] = value === undefined ? (spec.default ?? null) : value;
    }
    if (!body.deliver_on.length) {
      this.errors.set("deliver_on", ["Choose at least one event."]);
      this.update();
      return;
    }
    if (this.escalation && (this.steps.length || this.rule?.escalation?.length)) {
      body.escalation = this.steps.map((step) => ({ after_seconds: Math.round(Number(step.after) * step.unit), channel_ids: step.channel_ids }));
    }
    this.saving = true;
    this.update();
    try {
      const saved = this.editing ? await api.patch(`/routing-rules/${this.rule.rule_id}`, body) : await api.post("/routing-rules", body);
      this.app.notify(`Rule ${saved.rule_id} ${this.editing ? "saved" : "created"}.`);
      location.hash = "#/rules";
    } catch (error) {
      const steps = this.steps.flatMap((_, index) => [`escalation.${index}.after_seconds`, `escalation.${index}.channel_ids`]);
      this.refused(error, [...specs.map((spec) => spec.name), "escalation", ...steps]);
    }
  }

  async remove() {
    if (!window.confirm(`Delete rule ${this.rule.rule_id}?`)) return;
    await this.act(() => api.delete(`/routing-rules/${this.rule.rule_id}`), `Rule ${this.rule.rule_id} deleted.`, () => {
      location.hash = "#/rules";
    });
  }

  stepsEditor() {
    if (this.escalation === false) {
      return html`<fieldset class="field"><legend>Escalation steps</legend>${unavailable("Escalation", "This server's routing rules take no escalation steps yet.")}</fieldset>`;
    }
    const disabled = !this.canWrite;
    return html`<fieldset class="field escalation ${this.errors.get("escalation") ? "has-error" : ""}"><legend>Escalation steps</legend>
      <p class="help">While the alert stays open (not acknowledged or closed), each step also notifies its channels.</p>
      ${this.steps.map((step, index) => {
        const afterErrors = this.errors.get(`escalation.${index}.after_seconds`);
        const channelErrors = this.errors.get(`escalation.${index}.channel_ids`);
        return html`<div class="step" data-step=${index}>
          <div class="field ${afterErrors ? "has-error" : ""}"><label for=${`step-${index}-after`}>Step ${index + 1} after</label>
            <span class="inline"><input id=${`step-${index}-after`} type="number" min="1" step="1" required .value=${String(step.after)} ?disabled=${disabled}
              @input=${(event) => this.setStep(index, { after: event.target.value })}>
            <select aria-label=${`Step ${index + 1} unit`} ?disabled=${disabled} @change=${(event) => this.setStep(index, { unit: Number(event.target.value) })}>
              <option value="1" ?selected=${step.unit === 1}>seconds</option><option value="60" ?selected=${step.unit === 60}>minutes</option>
            </select></span>
            ${afterErrors ? html`<p class="field-error" role="alert">${afterErrors.join("; ")}</p>` : nothing}</div>
          <fieldset class="field ${channelErrors ? "has-error" : ""}"><legend>Step ${index + 1} channels</legend><div class="choices">
            ${[...this.channels.values()].map((channel) => html`<label class="choice"><input type="checkbox" ?disabled=${disabled}
              ?checked=${step.channel_ids.includes(channel.channel_id)}
              @change=${(event) => this.setStep(index, { channel_ids: event.target.checked ? [...step.channel_ids, channel.channel_id] : step.channel_ids.filter((id) => id !== channel.channel_id) })}>${channel.name}</label>`)}
            </div>${channelErrors ? html`<p class="field-error" role="alert">${channelErrors.join("; ")}</p>` : nothing}</fieldset>
          ${disabled ? nothing : html`<button type="button" class="quiet" @click=${() => this.removeStep(index)}>Remove step ${index + 1}</button>`}
        </div>`;
      })}
      ${this.errors.get("escalation") ? html`<p class="field-error" role="alert">${this.errors.get("escalation").join("; ")}</p>` : nothing}
      ${disabled ? (this.steps.length ? nothing : html`<p class="muted">No escalation.</p>`) : html`<button type="button" @click=${() => this.addStep()}>Add a step</button>`}
    </fieldset>`;
  }

  template() {
    if (this.loadError) return html`<section class="card">${failure(this.loadError, () => this.load())}</section>`;
    if (!this.channels) return html`<section class="card">${loading("Loading")}</section>`;
    const rule = this.rule;
    if (!this.channels.size && !this.editing) {
      return html`<section class="card narrow"><h1>New rule</h1>
        <p>A rule sends alerts to a channel, and there is no channel yet. <a href="#/channels/new">Create a channel</a> first.</p></section>`;
    }
    const specs = RULE_FIELDS(this.channels, this.canWrite);
    return html`<section class="card narrow">
      <p class="crumbs"><a href="#/rules">Rules</a> › ${this.editing ? `Rule ${rule.rule_id}` : "new"}</p>
      <h1>${this.editing ? `Rule ${rule.rule_id}` : "New rule"}</h1>
      ${this.canWrite ? nothing : html`<p class="notice notice-info">Viewers can read rules but not change them.</p>`}
      ${this.summary()}
      <form novalidate @submit=${this.submit} aria-label="Routing rule">
        ${specs.map((spec) => field(spec, rule ? rule[spec.name] ?? (spec.kind === "list" ? [] : undefined) : spec.default, this.errors.get(spec.name)))}
        ${this.stepsEditor()}
        ${this.canWrite
          ? html`<div class="actions"><button class="primary" type="submit" ?disabled=${this.saving}>${this.saving ? "Saving…" : this.editing ? "Save" : "Create rule"}</button>
              ${this.editing ? html`<button type="button" class="danger" @click=${() => this.remove()}>Delete</button>` : nothing}
              <a href="#/rules">Cancel</a></div>`
          : nothing}
      </form>
    </section>`;
  }
}

const EXPLAIN_FIELDS = [
  { name: "alert.device_id", label: "Device", required: true, placeholder: "pump-1" },
  { name: "alert.alert_type", label: "Alert type", required: true, placeholder: "overheat" },
  { name: "alert.severity", label: "Severity", kind: "select", required: true, numeric: true, options: SEVERITY_CHOICES, default: "4" },
  { name: "alert.site_id", label: "Site", help: "Empty takes the device's site." },
  { name: "alert.details", label: "Details (JSON)", kind: "textarea", rows: 3, placeholder: '{"device_tags": {"line": "2"}}' },
  { name: "event_type", label: "Event", kind: "select", options: EVENTS.map(([value]) => [value, value]), default: "OPEN" },
];

const OUTCOME_TEXT = {
  send: "would send",
  throttled: "throttled",
  suppressed: "silenced",
  no_match: "does not match",
  rule_disabled: "rule disabled",
  channel_disabled: "channel disabled",
  shadowed: "channel already taken by an earlier rule",
};

export class ExplainView extends FormView {
  get title() {
    return "Explain an alert";
  }

  constructor(...args) {
    super(...args);
    this.result = null;
    this.missing = false;
    this.channels = null;
  }

  load() {
    channelMap().then((channels) => {
      this.channels = channels;
      this.update();
    }, () => {});
  }

  async submit(event) {
    event.preventDefault();
    const form = event.target;
    const detailsInput = form.elements.namedItem("alert.details");
    let details;
    try {
      details = detailsInput.value.trim() ? JSON.parse(detailsInput.value) : undefined;
      detailsInput.setCustomValidity(details === undefined || (details && typeof details === "object" && !Array.isArray(details)) ? "" : "Details must be a JSON object.");
    } catch {
      detailsInput.setCustomValidity("Details must be valid JSON, e.g. {\"zone\": \"north\"}.");
    }
    if (!this.checked(form)) return;
    const alert = {};
    for (const spec of EXPLAIN_FIELDS.slice(0, 4)) {
      const value = readField(form, spec);
      if (value !== undefined) alert[spec.name.slice("alert.".length)] = value;
    }
    if (details !== undefined) alert.details = details;
    this.saving = true;
    this.result = null;
    this.update();
    try {
      this.result = await api.post("/routing/explain", { alert, event_type: readField(form, EXPLAIN_FIELDS[5]) });
      this.saving = false;
      this.update();
    } catch (error) {
      if (!error.notFound) {
        this.refused(error, EXPLAIN_FIELDS.map((spec) => spec.name));
        return;
      }
      this.missing = true;
      this.saving = false;
      this.update();
    }
  }

  resultTable() {
    const result = this.result;
    const targets = result.channels || [];
    return html`<section class="explain-result" aria-label="Explanation">
      <h2>What the ${result.event_type} event would do now</h2>
      <p class=${targets.length ? "ok-text" : "muted"}>${targets.length
        ? html`Would send to: ${targets.map((id, index) => html`${index ? ", " : ""}<a href=${`#/channels/${id}`}>${channelName(this.channels, id)}</a>`)}`
        : "Would send to no channel."}</p>
      ${result.rules.length
        ? tableBox(html`<table class="explain stack"><thead><tr><th>Rule</th><th>Channel</th><th>Outcome</th><th>Why</th></tr></thead>
            <tbody>${result.rules.map((row) => html`<tr data-rule-id=${row.rule_id} class=${`outcome-${row.outcome}`}>
              <td><a href=${`#/rules/${row.rule_id}`}>Rule ${row.rule_id}</a></td>
              <td data-label="Channel">${channelName(this.channels, row.channel_id)}</td>
              <td data-label="Outcome"><span class="status status-outcome-${row.outcome}">${OUTCOME_TEXT[row.outcome] || row.outcome}</span></td>
              <td data-label="Why">${row.failed?.length ? html`fails ${row.failed.map((name, index) => html`${index ? ", " : ""}<code>${name}</code>`)}` : nothing}
                ${row.silence_id ? html`silenced by <a href="#/silences">silence ${row.silence_id}</a>` : nothing}</td>
            </tr>`)}</tbody></table>`)
        : empty("This tenant has no routing rules.")}
    </section>`;
  }

  template() {
    const prefill = (spec) => this.query.get(spec.name.replace(/^alert\./, "")) ?? spec.default;
    return html`<section class="card narrow">
      <p class="crumbs"><a href="#/rules">Rules</a> › explain</p>
      <h1>Explain an alert</h1>
      <p class="muted">Type an alert to see which rules would send it, which would not, and why. Nothing is sent or saved.</p>
      ${this.summary()}
      <form novalidate @submit=${this.submit} aria-label="Explain">
        ${EXPLAIN_FIELDS.map((spec) => field(spec, prefill(spec), this.errors.get(spec.name)))}
        <div class="actions"><button class="primary" type="submit" ?disabled=${this.saving}>${this.saving ? "Explaining…" : "Explain"}</button></div>
      </form>
      ${this.missing ? unavailable("Explain", "POST /api/v2/routing/explain answered 404: this Pulse version does not have it yet.") : nothing}
      ${this.result ? this.resultTable() : nothing}
    </section>`;
  }
}
