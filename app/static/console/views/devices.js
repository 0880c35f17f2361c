// Devices: the list with site and tags, and one device's latest readings, followed live over
// the WebSocket, with a small chart per metric (uPlot, vendored).

import uPlot from "../../vendor/uplot/uPlot.esm.js";
import { api, listAll } from "../api.js";
import { keyed } from "../../vendor/lit-html/directives/keyed.js";
import { empty, failure, html, loading, nothing, tableBox, timeOf } from "../ui.js";
import { View } from "../view.js";

const KEPT_READINGS = 500;
const CHART_HEIGHT = 140;

function tagList(tags) {
  const entries = Object.entries(tags || {});
  if (!entries.length) return html`<span class="muted">—</span>`;
  return html`<ul class="tags">${entries.map(([name, value]) => html`<li><span class="tag">${name}=${String(value)}</span></li>`)}</ul>`;
}

export class DevicesView extends View {
  get title() {
    return "Devices";
  }

  constructor(...args) {
    super(...args);
    this.devices = null;
    this.search = "";
  }

  load() {
    return this.attempt(async () => {
      this.devices = await listAll("/devices", {}, 4);
    });
  }

  template() {
    const needle = this.search.trim().toLowerCase();
    const devices = this.devices?.filter(
      (device) => !needle || device.device_id.toLowerCase().includes(needle) || (device.site_id || "").toLowerCase().includes(needle),
    );
    return html`<section class="card">
      <div class="heading"><h1>Devices</h1></div>
      <form class="filters" @submit=${(event) => event.preventDefault()}>
        <div class="field"><label for="device-search">Device or site</label>
          <input id="device-search" type="search" placeholder="contains…" @input=${(event) => { this.search = event.target.value; this.update(); }}></div>
      </form>
      ${this.error ? failure(this.error, () => this.load()) : nothing}
      ${!devices && !this.error ? loading("Loading devices") : nothing}
      ${devices && !devices.length ? empty("No devices. A device is registered by POST /devices or by its first alert.") : nothing}
      ${devices?.length
        ? tableBox(html`<table class="devices stack"><thead><tr><th>Device</th><th>Site</th><th>Tags</th><th>Registered</th></tr></thead>
            <tbody>${devices.map((device) => html`<tr data-device-id=${device.device_id}>
              <td><a href=${`#/devices/${encodeURIComponent(device.device_id)}`}>${device.device_id}</a></td>
              <td data-label="Site">${device.site_id ?? html`<span class="muted">—</span>`}</td>
              <td data-label="Tags">${tagList(device.tags)}</td>
              <td data-label="Registered">${timeOf(device.created_at)}</td>
            </tr>`)}</tbody></table>`)
        : nothing}
    </section>`;
  }
}

export class DeviceView extends View {
  get title() {
    return `Device ${this.params.deviceId}`;
  }

  constructor(...args) {
    super(...args);
    this.device = null;
    this.readings = [];
    this.following = false;
    this.charts = new Map();
  }

  async load() {
    const id = encodeURIComponent(this.params.deviceId);
    try {
      const [device, page] = await Promise.all([api.get(`/devices/${id}`), api.get(`/devices/${id}/telemetry?limit=200`)]);
      this.device = device;
      this.merge(page.items);
    } catch (error) {
      this.error = error;
      this.update();
      return;
    }
    this.listen(this.app.feed, "telemetry", (event) => {
      if (event.detail.device_id === this.params.deviceId) this.merge([event.detail.data]);
    });
    this.listen(this.app.feed, "subscribed", (event) => {
      if (event.detail.channel === "device" && event.detail.device_id === this.params.deviceId) {
        this.following = true;
        this.update();
      }
    });
    this.listen(this.app.feed, "state", (event) => {
      if (event.detail !== "live") {
        this.following = false;
        this.update();
      }
    });
    this.cleanups.push(this.app.feed.followDevice(this.params.deviceId));
    const resize = new ResizeObserver(() => this.sizeCharts());
    resize.observe(this.app.outlet);
    this.cleanups.push(() => resize.disconnect());
    this.cleanups.push(() => this.dropCharts());
  }

  /** Add readings (any order), keeping the newest KEPT_READINGS, oldest first. */
  merge(readings) {
    const byTime = new Map(this.readings.map((reading) => [reading.timestamp, reading]));
    for (const reading of readings) byTime.set(reading.timestamp, reading);
    this.readings = [...byTime.values()].sort((a, b) => new Date(a.timestamp) - new Date(b.timestamp)).slice(-KEPT_READINGS);
    this.update();
  }

  metrics() {
    const names = new Set();
    for (const reading of this.readings) for (const name of Object.keys(reading.metrics)) names.add(name);
    return [...names].sort();
  }

  latest(metric) {
    for (let index = this.readings.length - 1; index >= 0; index -= 1) {
      const value = this.readings[index].metrics[metric];
      if (value !== undefined) return { value, at: this.readings[index].timestamp };
    }
    return null;
  }

  update() {
    super.update();
    if (!this.stopped) this.drawCharts();
  }

  series(metric) {
    const times = [];
    const values = [];
    for (const reading of this.readings) {
      if (reading.metrics[metric] === undefined) continue;
      times.push(new Date(reading.timestamp).getTime() / 1000);
      values.push(reading.metrics[metric]);
    }
    return [times, values];
  }

  chartWidth(box) {
    return Math.max(200, Math.floor(box.getBoundingClientRect().width));
  }

  drawCharts() {
    for (const box of this.app.outlet.querySelectorAll("[data-chart]")) {
      const metric = box.dataset.chart;
      let chart = this.charts.get(metric);
      if (chart && chart.root.parentElement !== box) {
        chart.destroy();
        chart = null;
      }
      const data = this.series(metric);
      if (!chart) {
        chart = new uPlot(
          {
            width: this.chartWidth(box),
            height: CHART_HEIGHT,
            legend: { show: false },
            cursor: { drag: { x: false, y: false } },
            series: [{}, { label: metric, stroke: "#2563eb", width: 2, fill: "rgba(37, 99, 235, 0.08)", points: { size: 4 } }],
            axes: [{ stroke: "#667085", grid: { stroke: "#eef0f3" } }, { stroke: "#667085", grid: { stroke: "#eef0f3" }, size: 50 }],
          },
          data,
          box,
        );
        this.charts.set(metric, chart);
      } else {
        chart.setData(data);
      }
    }
  }

  sizeCharts() {
    for (const chart of this.charts.values()) {
      const box = chart.root.parentElement;
      if (box) chart.setSize({ width: this.chartWidth(box), height: CHART_HEIGHT });
    }
  }

  dropCharts() {
    for (const chart of this.charts.values()) chart.destroy();
    this.charts.clear();
  }

  template() {
    if (this.error) return html`<section class="card">${failure(this.error, () => location.reload())}</section>`;
    if (!this.device) return html`<section class="card">${loading("Loading the device")}</section>`;
    const device = this.device;
    const metrics = this.metrics();
    return html`<section class="card">
      <p class="crumbs"><a href="#/devices">Devices</a> › ${device.device_id}</p>
      <div class="heading"><h1>${device.device_id}</h1>
        <span class=${`feed feed-${this.following ? "live" : "offline"}`} data-following=${this.following ? "yes" : "no"}>${this.following ? "Live" : "Not live"}</span></div>
      <dl class="facts">
        <dt>Site</dt><dd>${device.site_id ?? "—"}</dd>
        <dt>Tags</dt><dd>${tagList(device.tags)}</dd>
        <dt>Registered</dt><dd>${timeOf(device.created_at)}</dd>
        <dt>Alerts</dt><dd><a href=${`#/alerts?device=${encodeURIComponent(device.device_id)}`}>This device's alerts</a></dd>
      </dl>
      <h2>Latest readings</h2>
      ${metrics.length
        ? html`${tableBox(html`<table class="readings"><thead><tr><th>Metric</th><th>Value</th><th>At</th></tr></thead>
              <tbody>${metrics.map((metric) => {
                const latest = this.latest(metric);
                return html`<tr data-metric=${metric}><td>${metric}</td><td class="value">${latest.value}</td><td>${timeOf(latest.at)}</td></tr>`;
              })}</tbody></table>`)}
            <div class="charts">${keyed(metrics.join("\u0000"), html`${metrics.map((metric) => html`<figure class="chart-card">
              <figcaption>${metric}</figcaption><div class="chart" data-chart=${metric} role="img" aria-label=${`Chart of ${metric}`}></div></figure>`)}`)}</div>`
        : empty("No telemetry yet. Readings posted to POST /devices/{id}/telemetry appear here as they arrive.")}
    </section>`;
  }
}
