// Alerts: the live list of open and acknowledged alerts (and closed ones on request), and one
// alert's page with its timeline: events, each channel's jobs and their attempts.

import { api, listAll, query } from "../api.js";
import { channelMap, channelName } from "../store.js";
import {
  ageOf, empty, failure, html, jsonBlock, loading, nothing, SEVERITY_CHOICES, severityBadge, statusBadge, tableBox, timeOf,
} from "../ui.js";
import { field, readField } from "../forms.js";
import { FormView, View } from "../view.js";

const UNSETTLED = new Set(["PENDING", "SENDING", "RETRYING"]);

/** "ACKNOWLEDGED by ops@example.com" when the API says who; the bare status otherwise. */
export function alertStatus(alert) {
  const by = alert.status === "CLOSED" ? alert.closed_by : alert.status === "ACKNOWLEDGED" ? alert.acknowledged_by : null;
  return html`${statusBadge(alert.status)}${by ? html` <span class="by">by ${by}</span>` : nothing}`;
}

/** Acknowledge and close, shared by the list and the alert's page. */
async function change(view, alert, action) {
  view.busy = `${alert.alert_id}:${action}`;
  view.update();
  try {
    const answer = await api.post(`/alerts/${alert.alert_id}/${action}`);
    const verb = action === "acknowledge" ? "acknowledged" : "closed";
    view.app.notify(`Alert #${alert.alert_id} ${verb}; ${answer.jobs_queued} notification(s) queued.`);
    view.changed?.(answer);
  } catch (error) {
    view.app.notify(`Alert #${alert.alert_id}: ${error.message}`, "error");
  } finally {
    view.busy = null;
    view.update();
  }
}

function alertActions(view, alert) {
  if (!view.canWrite) return nothing;
  const busy = (action) => view.busy === `${alert.alert_id}:${action}`;
  return html`<div class="actions">
    ${alert.status === "OPEN"
      ? html`<button type="button" ?disabled=${busy("acknowledge")} @click=${() => change(view, alert, "acknowledge")}
          aria-label=${`Acknowledge alert ${alert.alert_id}`}>Acknowledge</button>`
      : nothing}
    ${alert.status !== "CLOSED"
      ? html`<button type="button" ?disabled=${busy("close")} @click=${() => change(view, alert, "close")}
          aria-label=${`Close alert ${alert.alert_id}`}>Close</button>`
      : nothing}
  </div>`;
}

const RAISE_FIELDS = [
  { name: "device_id", label: "Device", required: true, placeholder: "pump-1" },
  { name: "alert_type", label: "Alert type", required: true, placeholder: "overheat" },
  { name: "severity", label: "Severity", kind: "select", numeric: true, options: SEVERITY_CHOICES, default: "4" },
  { name: "message", label: "Message", placeholder: "Pump 1 at 97 C" },
  { name: "site_id", label: "Site", help: "Empty takes the device's site." },
];

export class AlertsView extends FormView {
  get title() {
    return "Alerts";
  }

  constructor(...args) {
    super(...args);
    this.alerts = null;
    this.closed = null;
    this.filters = {
      status: this.query.get("status") || "active",
      minSeverity: this.query.get("min_severity") || "",
      device: this.query.get("device") || "",
    };
  }

  load() {
    this.listen(this.app.feed, "alerts", (event) => {
      this.alerts = event.detail.alerts;
      this.error = null;
      this.update();
    });
    this.listen(this.app.feed, "alert", () => {
      if (this.filters.status === "CLOSED") this.loadClosed();
    });
    this.cleanups.push(this.app.feed.followAlerts());
    // The list also comes over plain HTTP, so the page works while the feed connects (or
    // where a proxy refuses WebSockets); the feed's lists replace it.
    Promise.all([
      listAll("/alerts", { status: "OPEN" }, 2),
      listAll("/alerts", { status: "ACKNOWLEDGED" }, 2),
    ]).then(
      ([open, acknowledged]) => {
        if (this.alerts === null) {
          this.alerts = [...open, ...acknowledged].sort((a, b) => b.alert_id - a.alert_id);
          this.update();
        }
      },
      (error) => {
        if (this.alerts === null) {
          this.error = error;
          this.update();
        }
      },
    );
    if (this.filters.status === "CLOSED") this.loadClosed();
    this.every(15000, () => this.update());
  }

  loadClosed() {
    return this.attempt(async () => {
      this.closed = (await api.get(`/alerts${query({ status: "CLOSED", limit: 200 })}`)).items;
    });
  }

  /** POST /alerts: an operator raises an alert by hand, e.g. to see a rule deliver end to end. */
  async raise(event) {
    event.preventDefault();
    const form = event.target;
    if (!this.checked(form)) return;
    const body = { message: "" };
    for (const spec of RAISE_FIELDS) {
      const value = readField(form, spec);
      if (value !== undefined) body[spec.name] = value;
    }
    this.saving = true;
    this.update();
    try {
      const alert = await api.post("/alerts", body);
      this.app.notify(
        alert.jobs_queued
          ? `Alert #${alert.alert_id} is open; ${alert.jobs_queued} notification(s) queued.`
          : `Alert #${alert.alert_id} is open; nothing was queued (no rule matched, or it was already open).`,
      );
      this.saving = false;
      this.raising = false;
      this.update();
    } catch (error) {
      this.refused(error, RAISE_FIELDS.map((spec) => spec.name));
    }
  }

  raiseForm() {
    if (!this.canWrite) return nothing;
    return html`<details class="bulk" ?open=${this.raising} @toggle=${(event) => { this.raising = event.target.open; }}>
      <summary>Raise an alert…</summary>
      <p class="help">Opens an alert as a device would (POST /alerts): the routing rules deliver it.</p>
      ${this.summary()}
      <form class="filters" novalidate @submit=${this.raise} aria-label="Raise an alert">
        ${RAISE_FIELDS.map((spec) => field(spec, spec.default, this.errors.get(spec.name)))}
        <div class="actions"><button class="primary" type="submit" ?disabled=${this.saving}>Raise alert</button></div>
      </form>
    </details>`;
  }

  setFilter(name, value) {
    this.filters = { ...this.filters, [name]: value };
    if (name === "status" && value === "CLOSED") this.loadClosed();
    this.update();
  }

  shown() {
    const source = this.filters.status === "CLOSED" ? this.closed : this.alerts;
    if (!source) return null;
    const device = this.filters.device.trim().toLowerCase();
    const minSeverity = this.filters.minSeverity === "" ? null : Number(this.filters.minSeverity);
    return source.filter(
      (alert) =>
        (this.filters.status === "active" || this.filters.status === "CLOSED" || alert.status === this.filters.status) &&
        (minSeverity === null || alert.severity >= minSeverity) &&
        (!device || alert.device_id.toLowerCase().includes(device)),
    );
  }

  template() {
    const alerts = this.shown();
    return html`<section class="card">
      <div class="heading"><h1>Alerts</h1>
        <span class="muted">${this.filters.status === "CLOSED" ? "closed alerts, newest first" : "open and acknowledged, live"}</span></div>
      <form class="filters" @submit=${(event) => event.preventDefault()}>
        <div class="field"><label for="alert-status">Status</label>
          <select id="alert-status" @change=${(event) => this.setFilter("status", event.target.value)}>
            ${[["active", "Open and acknowledged"], ["OPEN", "Open"], ["ACKNOWLEDGED", "Acknowledged"], ["CLOSED", "Closed"]].map(
              ([value, label]) => html`<option value=${value} ?selected=${this.filters.status === value}>${label}</option>`,
            )}
          </select></div>
        <div class="field"><label for="alert-severity">Minimum severity</label>
          <select id="alert-severity" @change=${(event) => this.setFilter("minSeverity", event.target.value)}>
            <option value="">any</option>
            ${SEVERITY_CHOICES.map(([value, label]) => html`<option value=${value} ?selected=${this.filters.minSeverity === String(value)}>${label}</option>`)}
          </select></div>
        <div class="field"><label for="alert-device">Device</label>
          <input id="alert-device" type="search" placeholder="device id contains…" .value=${this.filters.device}
            @input=${(event) => this.setFilter("device", event.target.value)}></div>
      </form>
      ${this.raiseForm()}
      ${this.error && !alerts ? failure(this.error, () => location.reload()) : nothing}
      ${!alerts && !this.error ? loading("Loading alerts") : nothing}
      ${alerts && alerts.length === 0 ? empty("No alerts match.") : nothing}
      ${alerts && alerts.length
        ? tableBox(html`<table class="alerts stack">
            <thead><tr><th>Severity</th><th>Device</th><th>Site</th><th>Type</th><th>Message</th><th>Age</th><th>Status</th>
              ${this.canWrite ? html`<th><span class="sr-only">Actions</span></th>` : nothing}</tr></thead>
            <tbody>${alerts.map((alert) => html`<tr data-alert-id=${alert.alert_id}>
              <td>${severityBadge(alert.severity, alert.severity_label)}</td>
              <td data-label="Device"><a href=${`#/devices/${encodeURIComponent(alert.device_id)}`}>${alert.device_id}</a></td>
              <td data-label="Site">${alert.site_id ?? html`<span class="muted">—</span>`}</td>
              <td data-label="Type">${alert.alert_type}</td>
              <td data-label="Message" class="message"><a href=${`#/alerts/${alert.alert_id}`}>${alert.message || "(no message)"}</a></td>
              <td data-label="Age">${ageOf(alert.triggered_at)}</td>
              <td data-label="Status">${alertStatus(alert)}</td>
              ${this.canWrite ? html`<td>${alertActions(this, alert)}</td>` : nothing}
            </tr>`)}</tbody></table>`)
        : nothing}
    </section>`;
  }
}

export class AlertView extends View {
  get title() {
    return `Alert #${this.params.alertId}`;
  }

  constructor(...args) {
    super(...args);
    this.alert = null;
    this.jobs = null;
    this.channels = null;
  }

  load() {
    this.listen(this.app.feed, "alert", (event) => {
      if (String(event.detail.alert?.alert_id) === String(this.params.alertId)) this.refresh();
    });
    this.cleanups.push(this.app.feed.followAlerts());
    this.every(3000, () => {
      if (this.jobs?.some((job) => UNSETTLED.has(job.status))) this.refresh();
    });
    this.refresh();
  }

  changed() {
    this.refresh();
  }

  refresh() {
    return this.attempt(async () => {
      const id = encodeURIComponent(this.params.alertId);
      const [alert, jobs, channels] = await Promise.all([
        api.get(`/alerts/${id}`),
        listAll("/deliveries", { alert_id: this.params.alertId }, 2),
        channelMap(),
      ]);
      // Each job with its attempts (the list carries no log).
      this.jobs = await Promise.all(jobs.map((job) => api.get(`/deliveries/${job.job_id}`)));
      this.alert = alert;
      this.channels = channels;
    });
  }

  async silenceSite() {
    const alert = this.alert;
    const endsAt = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
    try {
      const silence = await api.post("/silences", {
        name: `Site ${alert.site_id} silenced from alert #${alert.alert_id}`,
        comment: `Created in the console from alert #${alert.alert_id} (${alert.alert_type} on ${alert.device_id}).`,
        matchers: { site_ids: [alert.site_id] },
        ends_at: endsAt,
      });
      this.app.notify(`Site ${alert.site_id} is silenced for 2 hours (silence ${silence.silence_id}).`);
    } catch (error) {
      this.app.notify(error.notFound ? "Silences are not available on this server." : `Silence: ${error.message}`, "error");
    }
  }

  timeline() {
    const alert = this.alert;
    const events = [{ at: alert.triggered_at, what: "Opened", by: null }];
    for (const job of this.jobs.filter((item) => item.event_type === "ESCALATED")) {
      events.push({ at: job.created_at, what: `Escalated (step ${job.escalation_step ?? job.payload?.escalation_step ?? "?"}) to ${channelName(this.channels, job.channel_id)}` });
    }
    if (alert.acknowledged_at) events.push({ at: alert.acknowledged_at, what: "Acknowledged", by: alert.acknowledged_by });
    if (alert.closed_at) events.push({ at: alert.closed_at, what: "Closed", by: alert.closed_by });
    events.sort((a, b) => new Date(a.at) - new Date(b.at));
    return html`<ol class="timeline">${events.map((event) => html`<li>${timeOf(event.at)} <strong>${event.what}</strong>${event.by ? html` by ${event.by}` : nothing}</li>`)}</ol>`;
  }

  deliveries() {
    if (this.jobs.length === 0) return empty("No notifications: no routing rule matched this alert.");
    const byChannel = new Map();
    for (const job of this.jobs) byChannel.set(job.channel_id, [...(byChannel.get(job.channel_id) || []), job]);
    return html`${[...byChannel].map(([channelId, jobs]) => html`<section class="channel-jobs" aria-label=${`Notifications on ${channelName(this.channels, channelId)}`}>
      <h3><a href=${`#/channels/${channelId}`}>${channelName(this.channels, channelId)}</a></h3>
      ${jobs.sort((a, b) => a.job_id - b.job_id).map((job) => html`<div class="job" data-job-id=${job.job_id}>
        <p><a href=${`#/deliveries/${job.job_id}`}>Job ${job.job_id}</a> · ${job.event_type}${job.escalation_step ? ` step ${job.escalation_step}` : ""}
          · ${statusBadge(job.status)} · ${job.attempts} attempt(s)${job.last_error && job.status !== "DELIVERED" ? html` · <span class="error-text">${job.last_error}</span>` : nothing}</p>
        ${attemptTable(job.log || [])}
      </div>`)}
    </section>`)}`;
  }

  template() {
    if (this.error) return html`<section class="card">${failure(this.error, () => this.refresh())}</section>`;
    if (!this.alert) return html`<section class="card">${loading("Loading the alert")}</section>`;
    const alert = this.alert;
    return html`<section class="card">
      <p class="crumbs"><a href="#/alerts">Alerts</a> › #${alert.alert_id}</p>
      <div class="heading"><h1>${severityBadge(alert.severity, alert.severity_label)} ${alert.message || alert.alert_type}</h1></div>
      <dl class="facts">
        <dt>Status</dt><dd>${alertStatus(alert)}</dd>
        <dt>Device</dt><dd><a href=${`#/devices/${encodeURIComponent(alert.device_id)}`}>${alert.device_id}</a></dd>
        <dt>Site</dt><dd>${alert.site_id ?? "—"}</dd>
        <dt>Type</dt><dd>${alert.alert_type}</dd>
        <dt>Triggered</dt><dd>${timeOf(alert.triggered_at)} (${ageOf(alert.triggered_at)} ago)</dd>
        <dt>Fingerprint</dt><dd><code>${alert.fingerprint}</code></dd>
      </dl>
      ${this.canWrite
        ? html`<div class="actions">${alertActions(this, alert)}
            ${alert.site_id && alert.status !== "CLOSED"
              ? html`<button type="button" @click=${() => this.silenceSite()}>Silence site ${alert.site_id} for 2 h</button>`
              : nothing}
            <a class="button" href=${`#/silences/new${query({ site: alert.site_id, alert: alert.alert_id })}`}>Silence…</a>
          </div>`
        : nothing}
      ${alert.details && Object.keys(alert.details).length ? html`<h2>Details</h2>${jsonBlock(alert.details)}` : nothing}
      <h2>Timeline</h2>${this.timeline()}
      <h2>Notifications</h2>${this.deliveries()}
    </section>`;
  }
}

/** A job's attempts: number, time, outcome, status code, duration and error. */
export function attemptTable(log) {
  if (!log.length) return html`<p class="muted">No attempt yet.</p>`;
  return tableBox(html`<table class="attempts stack">
    <thead><tr><th>Attempt</th><th>Time</th><th>Result</th><th>Status code</th><th>Duration</th><th>Error</th></tr></thead>
    <tbody>${log.map((row) => html`<tr>
      <td data-label="Attempt">${row.attempt}</td><td data-label="Time">${timeOf(row.created_at)}</td>
      <td data-label="Result">${row.success ? html`<span class="status status-delivered">ok</span>` : html`<span class="status status-failed">failed</span>`}</td>
      <td data-label="Status code">${row.status_code ?? "—"}</td>
      <td data-label="Duration">${row.duration_ms === null || row.duration_ms === undefined ? "—" : `${Math.round(row.duration_ms)} ms`}</td>
      <td data-label="Error" class=${row.error ? "error-text" : "blank"}>${row.error ?? ""}</td>
    </tr>`)}</tbody></table>`);
}
