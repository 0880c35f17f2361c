// Channels: the list with each channel's health and a Test button, and the create/edit form
// with one set of fields per channel type (secrets write-only).

import { api, listAll } from "../api.js";
import { CHANNEL_TYPES, visibleFields } from "../channel-types.js";
import { field, getPath, readField, setPath } from "../forms.js";
import { forgetChannels } from "../store.js";
import { empty, failure, html, loading, nothing, tableBox, timeOf } from "../ui.js";
import { keyed } from "../../vendor/lit-html/directives/keyed.js";
import { FormView, View } from "../view.js";

const MASK = "********";

/** The circuit breaker's view of a channel (DESIGN §5a), or a note that the server has none. */
export function healthCell(channel) {
  const health = channel.health;
  if (!health) return html`<span class="muted" title="this server does not report channel health">not reported</span>`;
  // A closed circuit that has seen failures is still sending, but not healthy.
  const state = health.state === "closed" && health.consecutive_failures ? "failing" : health.state;
  const label = { closed: "healthy", failing: "failing", open: "circuit open", half_open: "probing" }[state] || state;
  return html`<div class="health health-${state}">
    <span class="status status-health-${state}">${label}</span>
    ${health.consecutive_failures ? html`<span>${health.consecutive_failures} consecutive failure(s)</span>` : nothing}
    ${health.state === "open" && health.open_until ? html`<span>until ${timeOf(health.open_until)}</span>` : nothing}
    ${health.last_error ? html`<span class="error-text">${health.last_error}</span>` : nothing}
    <span class="muted">last success ${health.last_success_at ? timeOf(health.last_success_at) : "never"}</span>
  </div>`;
}

/** POST /channels/{id}/test, with the receiver's answer as the outcome. */
async function testChannel(view, channel) {
  view.tests = { ...view.tests, [channel.channel_id]: { busy: true, text: "Sending a test…" } };
  view.update();
  let outcome;
  try {
    const answer = await api.post(`/channels/${channel.channel_id}/test`);
    const code = answer.status_code ? ` (answer ${answer.status_code})` : "";
    outcome = { ok: true, text: `Test delivered in ${Math.round(answer.duration_ms)} ms${code}.` };
  } catch (error) {
    outcome = { ok: false, text: error.message };
  }
  view.tests = { ...view.tests, [channel.channel_id]: outcome };
  view.update();
}

function testOutcome(outcome) {
  if (!outcome) return nothing;
  const kind = outcome.busy ? "muted" : outcome.ok ? "ok-text" : "error-text";
  return html`<p class="test-outcome ${kind}" role="status" data-test-outcome>${outcome.text}</p>`;
}

export class ChannelsView extends View {
  get title() {
    return "Channels";
  }

  constructor(...args) {
    super(...args);
    this.channels = null;
    this.tests = {};
  }

  load() {
    return this.attempt(async () => {
      this.channels = await listAll("/channels");
    });
  }

  toggle(channel) {
    return this.act(
      () => api.patch(`/channels/${channel.channel_id}`, { is_enabled: !channel.is_enabled }),
      `Channel ${channel.name} ${channel.is_enabled ? "disabled" : "enabled"}.`,
      () => {
        forgetChannels();
        this.load();
      },
    );
  }

  template() {
    return html`<section class="card">
      <div class="heading"><h1>Channels</h1>
        ${this.canWrite ? html`<a class="button primary" href="#/channels/new">New channel</a>` : nothing}</div>
      ${this.error ? failure(this.error, () => this.load()) : nothing}
      ${!this.channels && !this.error ? loading("Loading channels") : nothing}
      ${this.channels && !this.channels.length
        ? empty(this.canWrite ? "No channels yet: create one to start delivering alerts." : "No channels yet.")
        : nothing}
      ${this.channels?.length
        ? tableBox(html`<table class="channels stack"><thead><tr><th>Name</th><th>Type</th><th>Enabled</th><th>Health</th>
            ${this.canWrite ? html`<th><span class="sr-only">Actions</span></th>` : nothing}</tr></thead>
            <tbody>${this.channels.map((channel) => html`<tr data-channel-id=${channel.channel_id}>
              <td><a href=${`#/channels/${channel.channel_id}`}>${channel.name}</a>${testOutcome(this.tests[channel.channel_id])}</td>
              <td data-label="Type">${CHANNEL_TYPES[channel.channel_type]?.label || channel.channel_type}</td>
              <td data-label="Enabled">${channel.is_enabled ? "yes" : html`<span class="status status-disabled">disabled</span>`}</td>
              <td data-label="Health">${healthCell(channel)}</td>
              ${this.canWrite
                ? html`<td><div class="actions">
                    <button type="button" ?disabled=${this.tests[channel.channel_id]?.busy} @click=${() => testChannel(this, channel)}
                      aria-label=${`Test ${channel.name}`}>Test</button>
                    <button type="button" @click=${() => this.toggle(channel)}>${channel.is_enabled ? "Disable" : "Enable"}</button>
                  </div></td>`
                : nothing}
            </tr>`)}</tbody></table>`)
        : nothing}
    </section>`;
  }
}

export class ChannelFormView extends FormView {
  get title() {
    return this.params.channelId ? "Channel" : "New channel";
  }

  constructor(...args) {
    super(...args);
    this.editing = Boolean(this.params.channelId);
    this.channel = null;
    this.channelType = "webhook";
    this.chosen = {};
    this.loadError = null;
    this.tests = {};
  }

  async load() {
    if (!this.editing) return;
    try {
      this.channel = await api.get(`/channels/${encodeURIComponent(this.params.channelId)}`);
      this.channelType = this.channel.channel_type;
      this.chosen = { version: getPath(this.channel.config, "version") };
    } catch (error) {
      this.loadError = error;
    }
    this.update();
  }

  /** The type's fields as the form names them (`config.smtp.port`), stored secrets marked. */
  specs() {
    const chosen = { version: "2c", ...this.chosen };
    return visibleFields(this.channelType, chosen).map((spec) => {
      const stored = this.channel ? getPath(this.channel.config, spec.name) : undefined;
      const isStored = spec.secret && (stored === MASK || (spec.kind === "pairs" && stored && Object.keys(stored).length > 0));
      return { ...spec, path: spec.name, name: `config.${spec.name}`, stored: isStored, disabled: !this.canWrite };
    });
  }

  value(spec) {
    if (!this.channel) return spec.default;
    const stored = getPath(this.channel.config, spec.path);
    if (spec.secret) return spec.kind === "pairs" ? {} : undefined;
    return stored ?? spec.default;
  }

  formChanged(event) {
    if (event.target.name === "config.version") {
      this.chosen = { ...this.chosen, version: event.target.value };
      this.update();
    }
  }

  config(form, specs) {
    const config = {};
    for (const spec of specs) {
      const value = readField(form, spec);
      if (value !== undefined) {
        setPath(config, spec.path, value);
      } else if (this.editing && !spec.secret) {
        // A field emptied on edit goes back to its default, or is cleared if it was set.
        const stored = getPath(this.channel.config, spec.path);
        if (spec.default !== undefined) setPath(config, spec.path, spec.numeric ? Number(spec.default) : spec.default);
        else if (Array.isArray(stored)) setPath(config, spec.path, []);
        else if (stored !== undefined && stored !== null && typeof stored !== "object") setPath(config, spec.path, null);
      }
    }
    return config;
  }

  async submit(event) {
    event.preventDefault();
    const form = event.target;
    const specs = this.specs();
    const config = this.config(form, specs);
    if (!this.checked(form)) {
      form.querySelector("[aria-invalid=true], :invalid")?.focus();
      return;
    }
    const name = form.elements.namedItem("name").value.trim();
    const isEnabled = form.elements.namedItem("is_enabled").checked;
    this.saving = true;
    this.update();
    try {
      const saved = this.editing
        ? await api.patch(`/channels/${this.channel.channel_id}`, { name, is_enabled: isEnabled, config })
        : await api.post("/channels", { name, channel_type: this.channelType, is_enabled: isEnabled, config });
      forgetChannels();
      this.app.notify(`Channel ${saved.name} ${this.editing ? "saved" : "created"}.`);
      location.hash = "#/channels";
    } catch (error) {
      this.refused(error, ["name", "channel_type", "is_enabled", ...specs.map((spec) => spec.name)]);
    }
  }

  async remove() {
    const channel = this.channel;
    if (!window.confirm(`Delete channel ${channel.name}? Its routing rules and its delivery history go with it.`)) return;
    await this.act(() => api.delete(`/channels/${channel.channel_id}`), `Channel ${channel.name} deleted.`, () => {
      forgetChannels();
      location.hash = "#/channels";
    });
  }

  template() {
    if (this.loadError) return html`<section class="card">${failure(this.loadError, () => this.load())}</section>`;
    if (this.editing && !this.channel) return html`<section class="card">${loading("Loading the channel")}</section>`;
    const specs = this.specs();
    const channel = this.channel;
    const heading = this.editing ? (this.canWrite ? `Edit ${channel.name}` : channel.name) : "New channel";
    return html`<section class="card narrow">
      <p class="crumbs"><a href="#/channels">Channels</a> › ${this.editing ? channel.name : "new"}</p>
      <h1>${heading}</h1>
      ${this.canWrite ? nothing : html`<p class="notice notice-info">Viewers can read channels but not change them.</p>`}
      ${this.summary()}
      <form novalidate @submit=${this.submit} @change=${this.formChanged} aria-label="Channel">
        ${field({ name: "name", label: "Name", required: true, disabled: !this.canWrite }, channel?.name, this.errors.get("name"))}
        ${this.editing
          ? html`<div class="field"><span class="label">Type</span><p>${CHANNEL_TYPES[this.channelType]?.label || this.channelType}</p></div>`
          : html`<div class="field ${this.errors.get("channel_type") ? "has-error" : ""}"><label for="f-channel_type">Type</label>
              <select id="f-channel_type" name="channel_type" @change=${(event) => { this.channelType = event.target.value; this.errors = new Map(); this.update(); }}>
                ${Object.entries(CHANNEL_TYPES).map(([type, info]) => html`<option value=${type} ?selected=${type === this.channelType}>${info.label}</option>`)}
              </select></div>`}
        <fieldset class="config"><legend>${CHANNEL_TYPES[this.channelType]?.label || this.channelType} settings</legend>
          ${keyed(this.channelType, html`${specs.map((spec) => html`${spec.group ? html`<h3 class="group">${spec.group}</h3>` : nothing}${field(spec, this.value(spec), this.errors.get(spec.name))}`)}`)}
        </fieldset>
        ${field({ name: "is_enabled", label: "Enabled", kind: "checkbox", default: true, disabled: !this.canWrite }, channel?.is_enabled, this.errors.get("is_enabled"))}
        ${this.canWrite
          ? html`<div class="actions">
              <button class="primary" type="submit" ?disabled=${this.saving}>${this.saving ? "Saving…" : this.editing ? "Save" : "Create channel"}</button>
              ${this.editing
                ? html`<button type="button" ?disabled=${this.tests[channel.channel_id]?.busy} @click=${() => testChannel(this, channel)}>Test</button>
                    <button type="button" class="danger" @click=${() => this.remove()}>Delete</button>`
                : nothing}
              <a href="#/channels">Cancel</a>
            </div>
            ${this.editing ? testOutcome(this.tests[channel.channel_id]) : nothing}`
          : nothing}
      </form>
      ${this.editing
        ? html`<h2>Health</h2>${healthCell(channel)}
            <p><a href=${`#/deliveries?channel_id=${channel.channel_id}`}>This channel's deliveries</a></p>`
        : nothing}
    </section>`;
  }
}
