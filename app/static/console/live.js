// The live feed (GET /api/v2/ws): one WebSocket per signed-in tab, reconnected when it drops,
// with the subscriptions the open view asked for renewed on every new connection.

import { API_ROOT } from "./api.js";
import { session } from "./session.js";

const CLOSE_BAD_TOKEN = 4001;
const CLOSE_FORBIDDEN = 4003;

export class LiveFeed extends EventTarget {
  constructor() {
    super();
    this.state = "offline";
    this.socket = null;
    this.alertSubscribers = 0;
    this.devices = new Map();
    this.retryDelay = 1000;
    this.retryTimer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.socket = null;
    // Closing a socket still connecting makes the browser log a warning: close it once open.
    if (socket?.readyState === WebSocket.CONNECTING) socket.addEventListener("open", () => socket.close(1000, "signed out"));
    else if (socket) socket.close(1000, "signed out");
    this._setState("offline");
  }

  /** Follow the tenant's active alerts; returns the function that stops following. */
  followAlerts() {
    this.alertSubscribers += 1;
    if (this.alertSubscribers === 1) this._send({ action: "subscribe", type: "alerts" });
    return () => {
      this.alertSubscribers -= 1;
      if (this.alertSubscribers === 0) this._send({ action: "unsubscribe", type: "alerts" });
    };
  }

  /** Follow one device's telemetry; returns the function that stops following. */
  followDevice(deviceId) {
    const count = (this.devices.get(deviceId) || 0) + 1;
    this.devices.set(deviceId, count);
    if (count === 1) this._send({ action: "subscribe", type: "device", device_id: deviceId });
    return () => {
      const left = (this.devices.get(deviceId) || 1) - 1;
      if (left > 0) {
        this.devices.set(deviceId, left);
        return;
      }
      this.devices.delete(deviceId);
      this._send({ action: "unsubscribe", type: "device", device_id: deviceId });
    };
  }

  _connect() {
    if (this.stopped || !session.token) return;
    this._setState("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // Browsers cannot set headers on a WebSocket: the API takes the token in the query.
    const socket = new WebSocket(`${scheme}://${location.host}${API_ROOT}/ws?token=${encodeURIComponent(session.token)}`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.retryDelay = 1000;
      this._setState("live");
      if (this.alertSubscribers > 0) this._send({ action: "subscribe", type: "alerts" });
      for (const deviceId of this.devices.keys()) this._send({ action: "subscribe", type: "device", device_id: deviceId });
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this._setState("offline");
      if (event.code === CLOSE_BAD_TOKEN || event.code === CLOSE_FORBIDDEN) {
        session.expire();
        return;
      }
      if (this.stopped) return;
      this.retryTimer = setTimeout(() => this._connect(), this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 30000);
    });
  }

  _send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  _setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}
