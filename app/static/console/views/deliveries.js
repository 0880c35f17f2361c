// Deliveries (notification jobs): the list filtered by status, channel and alert (status
// FAILED is the dead-letter queue), one job's attempt log, replay of one job, and bulk replay
// with the dry-run count shown before anything is replayed.

import { api, query } from "../api.js";
import { channelMap, channelName } from "../store.js";
import { empty, failure, html, jsonBlock, loading, localInputValue, nothing, statusBadge, tableBox, timeOf } from "../ui.js";
import { View } from "../view.js";
import { attemptTable } from "./alerts.js";

const STATUSES = ["PENDING", "SENDING", "RETRYING", "DELIVERED", "FAILED", "THROTTLED", "SUPPRESSED"];
const UNSETTLED = new Set(["PENDING", "SENDING", "RETRYING"]);

function eventText(job) {
  return job.escalation_step ? `${job.event_type} (step ${job.escalation_step})` : job.event_type;
}

function replayJob(view, job) {
  return view.act(() => api.post(`/deliveries/${job.job_id}/replay`), `Delivery ${job.job_id} replayed: it is pending again.`, () => view.refresh());
}

export class DeliveriesView extends View {
  get title() {
    return "Deliveries";
  }

  constructor(...args) {
    super(...args);
    this.filters = {
      status: this.query.get("status") || "",
      channel_id: this.query.get("channel_id") || "",
      alert_id: this.query.get("alert_id") || "",
    };
    this.jobs = null;
    this.cursor = null;
    this.paged = false;
    this.channels = null;
    this.bulk = null;
  }

  load() {
    channelMap().then((channels) => {
      this.channels = channels;
      this.update();
    }, () => {});
    this.refresh();
    this.every(3000, () => {
      if (!this.paged && this.jobs?.some((job) => UNSETTLED.has(job.status))) this.refresh();
    });
    this.listen(this.app.feed, "alert", () => setTimeout(() => !this.paged && this.refresh(), 500));
    this.cleanups.push(this.app.feed.followAlerts());
  }

  refresh() {
    return this.attempt(async () => {
      const page = await api.get(`/deliveries${query({ ...this.filters, limit: 50 })}`);
      this.jobs = page.items;
      this.cursor = page.next_cursor;
      this.paged = false;
    });
  }

  async more() {
    try {
      const page = await api.get(`/deliveries${query({ ...this.filters, limit: 50, cursor: this.cursor })}`);
      this.jobs = [...this.jobs, ...page.items];
      this.cursor = page.next_cursor;
      this.paged = true;
    } catch (error) {
      this.app.notify(error.message, "error");
    }
    this.update();
  }

  setFilter(name, value) {
    this.filters = { ...this.filters, [name]: value };
    history.replaceState(null, "", `#/deliveries${query(this.filters)}`);
    this.jobs = null;
    this.update();
    this.refresh();
  }

  bulkBody(form) {
    const since = form.elements.namedItem("since").value;
    const channel = form.elements.namedItem("bulk_channel").value;
    const body = {};
    if (channel) body.channel_id = Number(channel);
    if (since) body.since = new Date(since).toISOString();
    return body;
  }

  async countBulk(event) {
    event.preventDefault();
    const body = this.bulkBody(event.target);
    this.bulk = { busy: true, body };
    this.update();
    try {
      const answer = await api.post("/deliveries/replay", { ...body, dry_run: true });
      this.bulk = { count: answer.would_replay, body };
    } catch (error) {
      this.bulk = { error, body };
    }
    this.update();
  }

  async confirmBulk() {
    const body = this.bulk.body;
    this.bulk = { ...this.bulk, busy: true };
    this.update();
    try {
      const answer = await api.post("/deliveries/replay", body);
      this.app.notify(`Replayed ${answer.replayed} failed deliveries.`);
      this.bulk = null;
      this.refresh();
    } catch (error) {
      this.bulk = { ...this.bulk, busy: false, error };
      this.update();
    }
  }

  bulkPanel() {
    if (!this.canWrite) return nothing;
    const bulk = this.bulk;
    return html`<details class="bulk" ?open=${Boolean(bulk)}>
      <summary>Replay failed deliveries in bulk…</summary>
      <form class="filters" @submit=${this.countBulk} aria-label="Bulk replay">
        <div class="field"><label for="bulk-channel">Channel</label>
          <select id="bulk-channel" name="bulk_channel"><option value="">every channel</option>
            ${[...(this.channels?.values() || [])].map((channel) => html`<option value=${channel.channel_id} ?selected=${String(channel.channel_id) === this.filters.channel_id}>${channel.name}</option>`)}
          </select></div>
        <div class="field"><label for="bulk-since">Created since</label>
          <input id="bulk-since" name="since" type="datetime-local" max=${localInputValue(new Date(Date.now() + 60000))}></div>
        <div class="actions"><button type="submit" ?disabled=${bulk?.busy}>Count (dry run)</button></div>
      </form>
      ${bulk?.error ? html`<p class="error-text" role="alert">${bulk.error.message}</p>` : nothing}
      ${bulk && bulk.count !== undefined
        ? html`<div class="confirm" role="status" data-dry-run>
            <p><strong>${bulk.count}</strong> failed ${bulk.count === 1 ? "delivery" : "deliveries"} would be replayed.</p>
            <div class="actions">
              <button type="button" class="primary" ?disabled=${bulk.busy || bulk.count === 0} @click=${() => this.confirmBulk()}>Replay ${bulk.count}</button>
              <button type="button" @click=${() => { this.bulk = null; this.update(); }}>Cancel</button>
            </div></div>`
        : nothing}
    </details>`;
  }

  template() {
    const jobs = this.jobs;
    return html`<section class="card">
      <div class="heading"><h1>Deliveries</h1>
        <span class="muted">${this.filters.status === "FAILED" ? "the dead-letter queue" : "every notification job, newest first"}</span></div>
      <form class="filters" @submit=${(event) => event.preventDefault()} aria-label="Filters">
        <div class="field"><label for="delivery-status">Status</label>
          <select id="delivery-status" @change=${(event) => this.setFilter("status", event.target.value)}>
            <option value="">any</option>
            ${STATUSES.map((status) => html`<option value=${status} ?selected=${this.filters.status === status}>${status === "FAILED" ? "FAILED (dead-letter queue)" : status}</option>`)}
          </select></div>
        <div class="field"><label for="delivery-channel">Channel</label>
          <select id="delivery-channel" @change=${(event) => this.setFilter("channel_id", event.target.value)}>
            <option value="">any</option>
            ${[...(this.channels?.values() || [])].map((channel) => html`<option value=${channel.channel_id} ?selected=${String(channel.channel_id) === this.filters.channel_id}>${channel.name}</option>`)}
          </select></div>
        <div class="field"><label for="delivery-alert">Alert id</label>
          <input id="delivery-alert" type="number" min="1" .value=${this.filters.alert_id}
            @change=${(event) => this.setFilter("alert_id", event.target.value)}></div>
        <div class="actions"><button type="button" @click=${() => this.refresh()}>Refresh</button></div>
      </form>
      ${this.bulkPanel()}
      ${this.error ? failure(this.error, () => this.refresh()) : nothing}
      ${!jobs && !this.error ? loading("Loading deliveries") : nothing}
      ${jobs && !jobs.length ? empty(this.filters.status === "FAILED" ? "The dead-letter queue is empty." : "No deliveries match.") : nothing}
      ${jobs?.length
        ? tableBox(html`<table class="deliveries stack"><thead><tr><th>Job</th><th>Created</th><th>Alert</th><th>Channel</th><th>Event</th>
            <th>Status</th><th>Attempts</th><th>Next attempt</th><th>Last error</th>${this.canWrite ? html`<th><span class="sr-only">Actions</span></th>` : nothing}</tr></thead>
            <tbody>${jobs.map((job) => html`<tr data-job-id=${job.job_id}>
              <td data-label="Job"><a href=${`#/deliveries/${job.job_id}`}>${job.job_id}</a></td>
              <td data-label="Created">${timeOf(job.created_at)}</td>
              <td data-label="Alert"><a href=${`#/alerts/${job.alert_id}`}>#${job.alert_id}</a></td>
              <td data-label="Channel">${channelName(this.channels, job.channel_id)}</td>
              <td data-label="Event">${eventText(job)}</td>
              <td data-label="Status">${statusBadge(job.status)}</td>
              <td data-label="Attempts">${job.attempts}</td>
              <td data-label="Next attempt" class=${job.next_attempt_at ? "" : "blank"}>${job.next_attempt_at ? timeOf(job.next_attempt_at) : html`<span class="muted">—</span>`}</td>
              <td data-label="Last error" class=${job.last_error ? "error-text" : "blank"}>${job.last_error ?? ""}</td>
              ${this.canWrite ? html`<td>${job.status === "FAILED" ? html`<button type="button" @click=${() => replayJob(this, job)} aria-label=${`Replay delivery ${job.job_id}`}>Replay</button>` : nothing}</td>` : nothing}
            </tr>`)}</tbody></table>`)
        : nothing}
      ${this.cursor ? html`<div class="actions"><button type="button" @click=${() => this.more()}>Load more</button></div>` : nothing}
    </section>`;
  }
}

export class DeliveryView extends View {
  get title() {
    return `Delivery ${this.params.jobId}`;
  }

  constructor(...args) {
    super(...args);
    this.job = null;
    this.channels = null;
  }

  load() {
    this.refresh();
    this.every(1500, () => {
      if (this.job && UNSETTLED.has(this.job.status)) this.refresh();
    });
  }

  refresh() {
    return this.attempt(async () => {
      [this.job, this.channels] = await Promise.all([api.get(`/deliveries/${encodeURIComponent(this.params.jobId)}`), channelMap()]);
    });
  }

  template() {
    if (this.error) return html`<section class="card">${failure(this.error, () => this.refresh())}</section>`;
    if (!this.job) return html`<section class="card">${loading("Loading the delivery")}</section>`;
    const job = this.job;
    return html`<section class="card">
      <p class="crumbs"><a href="#/deliveries">Deliveries</a> › ${job.job_id}</p>
      <div class="heading"><h1>Delivery ${job.job_id} ${statusBadge(job.status)}</h1>
        ${this.canWrite && job.status === "FAILED" ? html`<button type="button" class="primary" @click=${() => replayJob(this, job)}>Replay</button>` : nothing}</div>
      <dl class="facts">
        <dt>Alert</dt><dd><a href=${`#/alerts/${job.alert_id}`}>#${job.alert_id}</a></dd>
        <dt>Channel</dt><dd><a href=${`#/channels/${job.channel_id}`}>${channelName(this.channels, job.channel_id)}</a></dd>
        <dt>Rule</dt><dd>${job.rule_id ? html`<a href=${`#/rules/${job.rule_id}`}>Rule ${job.rule_id}</a>` : "—"}</dd>
        <dt>Event</dt><dd>${eventText(job)}</dd>
        <dt>Attempts</dt><dd>${job.attempts}</dd>
        <dt>Created</dt><dd>${timeOf(job.created_at)}</dd>
        <dt>Delivered</dt><dd>${timeOf(job.delivered_at)}</dd>
        <dt>Next attempt</dt><dd>${timeOf(job.next_attempt_at)}</dd>
        <dt>Last error</dt><dd class="error-text">${job.last_error ?? "—"}</dd>
      </dl>
      <h2>Attempt log</h2>
      ${attemptTable(job.log || [])}
      <h2>Payload</h2>
      ${jsonBlock(job.payload)}
    </section>`;
  }
}
