// Silences and maintenance windows (DESIGN §6a): the active and upcoming ones, a form to
// create one (also reached from an alert, prefilled with its site), and ending one.

import { api, listAll } from "../api.js";
import { field, readField, setPath } from "../forms.js";
import { channelMap, channelName } from "../store.js";
import {
  empty, failure, html, loading, localInputValue, nothing, SEVERITY_CHOICES, tableBox, timeOf, unavailable,
} from "../ui.js";
import { FormView, View } from "../view.js";

const NOT_HERE = "GET /api/v2/silences answered 404: this Pulse version does not have silences yet.";

function matcherText(matchers) {
  const parts = [];
  const m = matchers || {};
  if (m.site_ids?.length) parts.push(`site ${m.site_ids.join(" or ")}`);
  if (m.device_prefixes?.length) parts.push(`device ${m.device_prefixes.map((prefix) => `${prefix}*`).join(" or ")}`);
  if (m.alert_type) parts.push(`type ${m.alert_type}`);
  if (m.device_tag_key) parts.push(`tag ${m.device_tag_key}${m.device_tag_val !== undefined && m.device_tag_val !== null ? `=${m.device_tag_val}` : ""}`);
  if (m.min_severity !== undefined && m.min_severity !== null) parts.push(`severity ≥ ${m.min_severity}`);
  if (m.max_severity !== undefined && m.max_severity !== null) parts.push(`severity ≤ ${m.max_severity}`);
  return parts.length ? parts.join(", ") : "everything";
}

export class SilencesView extends View {
  get title() {
    return "Silences";
  }

  constructor(...args) {
    super(...args);
    this.silences = null;
    this.missing = false;
    this.channels = null;
  }

  load() {
    return this.attempt(async () => {
      try {
        const [silences, channels] = await Promise.all([listAll("/silences"), channelMap()]);
        const now = Date.now();
        this.silences = silences.filter((silence) => silence.active || !silence.ends_at || new Date(silence.ends_at).getTime() > now);
        this.channels = channels;
      } catch (error) {
        if (!error.notFound) throw error;
        this.missing = true;
      }
    });
  }

  async end(silence) {
    if (!window.confirm(`End silence ${silence.name} now?`)) return;
    await this.act(() => api.delete(`/silences/${silence.silence_id}`), `Silence ${silence.name} ended.`, () => this.load());
  }

  template() {
    return html`<section class="card">
      <div class="heading"><h1>Silences</h1>
        ${this.canWrite && !this.missing ? html`<a class="button primary" href="#/silences/new">New silence</a>` : nothing}</div>
      <p class="muted">While a silence holds, the alerts it matches are recorded but not sent (SUPPRESSED).</p>
      ${this.missing ? unavailable("Silences", NOT_HERE) : nothing}
      ${this.error ? failure(this.error, () => this.load()) : nothing}
      ${!this.silences && !this.error && !this.missing ? loading("Loading silences") : nothing}
      ${this.silences && !this.silences.length ? empty("No silence is active or upcoming.") : nothing}
      ${this.silences?.length
        ? tableBox(html`<table class="silences stack"><thead><tr><th>Name</th><th>State</th><th>Matches</th><th>Channels</th><th>From</th><th>Until</th><th>Repeats</th>
            ${this.canWrite ? html`<th><span class="sr-only">Actions</span></th>` : nothing}</tr></thead>
            <tbody>${this.silences.map((silence) => html`<tr data-silence-id=${silence.silence_id}>
              <td>${silence.name}${silence.comment ? html`<p class="muted">${silence.comment}</p>` : nothing}</td>
              <td data-label="State">${silence.active ? html`<span class="status status-active">active</span>` : html`<span class="status status-pending">upcoming</span>`}</td>
              <td data-label="Matches">${matcherText(silence.matchers)}</td>
              <td data-label="Channels">${silence.channel_ids?.length ? silence.channel_ids.map((id) => channelName(this.channels, id)).join(", ") : "every channel"}</td>
              <td data-label="From">${timeOf(silence.starts_at)}</td>
              <td data-label="Until">${silence.ends_at ? timeOf(silence.ends_at) : "no end"}</td>
              <td data-label="Repeats">${silence.recurrence ? html`<code>${silence.recurrence.rrule}</code> (${silence.recurrence.timezone})` : "once"}</td>
              ${this.canWrite ? html`<td><button type="button" @click=${() => this.end(silence)}>End now</button></td>` : nothing}
            </tr>`)}</tbody></table>`)
        : nothing}
    </section>`;
  }
}

const MATCHER_FIELDS = [
  { name: "matchers.site_ids", label: "Sites", kind: "list", placeholder: "plant-1, plant-2" },
  { name: "matchers.device_prefixes", label: "Device id prefixes", kind: "list", placeholder: "pump-" },
  { name: "matchers.alert_type", label: "Alert type" },
  { name: "matchers.device_tag_key", label: "Device tag" },
  { name: "matchers.device_tag_val", label: "Tag value" },
  { name: "matchers.min_severity", label: "From severity", kind: "select", numeric: true, options: [["", "any"], ...SEVERITY_CHOICES] },
  { name: "matchers.max_severity", label: "Up to severity", kind: "select", numeric: true, options: [["", "any"], ...SEVERITY_CHOICES] },
];

export class SilenceFormView extends FormView {
  get title() {
    return "New silence";
  }

  constructor(...args) {
    super(...args);
    this.channels = null;
    this.missing = false;
  }

  async load() {
    try {
      await api.get("/silences?limit=1");
    } catch (error) {
      if (error.notFound) this.missing = true;
    }
    await this.attempt(async () => {
      this.channels = await channelMap();
    });
  }

  specs() {
    const now = new Date();
    const site = this.query.get("site");
    const alertId = this.query.get("alert");
    const disabled = !this.canWrite;
    return [
      { name: "name", label: "Name", required: true, value: site ? `Site ${site} maintenance` : "" },
      { name: "comment", label: "Comment", kind: "textarea", rows: 2, value: alertId ? `From alert #${alertId}` : "" },
      ...MATCHER_FIELDS.map((spec) => ({ ...spec, value: spec.name === "matchers.site_ids" && site ? [site] : undefined })),
      { name: "channel_ids", label: "Channels silenced", kind: "checkboxes", numeric: true, help: "None chosen silences every channel.",
        options: [...(this.channels?.values() || [])].map((channel) => [channel.channel_id, channel.name]) },
      { name: "starts_at", label: "Starts", kind: "datetime-local", required: true, value: localInputValue(now) },
      { name: "ends_at", label: "Ends", kind: "datetime-local", value: localInputValue(new Date(now.getTime() + 2 * 3600 * 1000)), help: "Required for a one-off silence; for a maintenance window it ends the series." },
      { name: "recurrence.rrule", label: "Repeats (RFC 5545 RRULE)", placeholder: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", help: "Empty for a one-off silence." },
      { name: "recurrence.duration_seconds", label: "Each occurrence lasts (seconds)", kind: "number", min: 1 },
      { name: "recurrence.timezone", label: "Time zone of the occurrences", value: Intl.DateTimeFormat().resolvedOptions().timeZone },
      { name: "notify_on_end", label: "When it ends, send what it held back for alerts still open", kind: "checkbox", default: true },
    ].map((spec) => ({ ...spec, disabled }));
  }

  async submit(event) {
    event.preventDefault();
    const form = event.target;
    const specs = this.specs();
    if (!this.checked(form)) return;
    const body = { matchers: {} };
    for (const spec of specs) {
      const value = readField(form, spec);
      if (value === undefined || (Array.isArray(value) && !value.length && spec.name === "channel_ids")) continue;
      setPath(body, spec.name, value);
    }
    if (body.recurrence && !body.recurrence.rrule) delete body.recurrence;
    if (!body.recurrence && !body.ends_at) {
      this.errors.set("ends_at", ["A one-off silence needs an end."]);
      this.update();
      return;
    }
    this.saving = true;
    this.update();
    try {
      const saved = await api.post("/silences", body);
      this.app.notify(`Silence ${saved.name} created.`);
      location.hash = "#/silences";
    } catch (error) {
      if (!error.notFound) {
        this.refused(error, specs.map((spec) => spec.name));
        return;
      }
      this.missing = true;
      this.saving = false;
      this.update();
    }
  }

  template() {
    if (this.error) return html`<section class="card">${failure(this.error, () => this.load())}</section>`;
    if (!this.channels) return html`<section class="card">${loading("Loading")}</section>`;
    return html`<section class="card narrow">
      <p class="crumbs"><a href="#/silences">Silences</a> › new</p>
      <h1>New silence</h1>
      ${this.missing ? unavailable("Silences", NOT_HERE) : nothing}
      ${this.summary()}
      <form novalidate @submit=${this.submit} aria-label="Silence">
        ${this.specs().slice(0, 2).map((spec) => field(spec, spec.value, this.errors.get(spec.name)))}
        <fieldset class="config"><legend>Silence alerts that match (all of these; none silences everything)</legend>
          ${this.specs().slice(2, 9).map((spec) => field(spec, spec.value, this.errors.get(spec.name)))}</fieldset>
        ${this.specs().slice(9).map((spec) => field(spec, spec.value, this.errors.get(spec.name)))}
        ${this.canWrite ? html`<div class="actions"><button class="primary" type="submit" ?disabled=${this.saving || this.missing}>Create silence</button>
          <a href="#/silences">Cancel</a></div>` : nothing}
      </form>
    </section>`;
  }
}
