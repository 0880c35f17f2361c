// The operator console: the page shell (header, navigation, notices), the sign-in form and the
// hash router that picks the page. Every piece of data comes from the public API and live feed.

import { api, ApiError } from "./api.js";
import { LiveFeed } from "./live.js";
import { session } from "./session.js";
import { html, nothing, render } from "./ui.js";
import { View } from "./view.js";
import { AlertView, AlertsView } from "./views/alerts.js";
import { ChannelFormView, ChannelsView } from "./views/channels.js";
import { DeliveriesView, DeliveryView } from "./views/deliveries.js";
import { DevicesView, DeviceView } from "./views/devices.js";
import { ExplainView, RuleFormView, RulesView } from "./views/rules.js";
import { SilenceFormView, SilencesView } from "./views/silences.js";

const SECTIONS = [
  ["alerts", "Alerts"],
  ["channels", "Channels"],
  ["rules", "Rules"],
  ["deliveries", "Deliveries"],
  ["silences", "Silences"],
  ["devices", "Devices"],
];

// [path pattern, page]; `:name` is a path parameter.
const ROUTES = [
  ["alerts", AlertsView],
  ["alerts/:alertId", AlertView],
  ["channels", ChannelsView],
  ["channels/new", ChannelFormView],
  ["channels/:channelId", ChannelFormView],
  ["rules", RulesView],
  ["rules/new", RuleFormView],
  ["rules/explain", ExplainView],
  ["rules/:ruleId", RuleFormView],
  ["deliveries", DeliveriesView],
  ["deliveries/:jobId", DeliveryView],
  ["silences", SilencesView],
  ["silences/new", SilenceFormView],
  ["devices", DevicesView],
  ["devices/:deviceId", DeviceView],
];

function match(path) {
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, page] of ROUTES) {
    const wanted = pattern.split("/");
    if (wanted.length !== parts.length) continue;
    const params = {};
    if (wanted.every((part, index) => (part.startsWith(":") ? ((params[part.slice(1)] = decodeURIComponent(parts[index])), true) : part === parts[index]))) {
      return { page, params };
    }
  }
  return null;
}

class SignInView extends View {
  constructor(app) {
    super(app);
    this.error = "";
    this.busy = false;
  }

  get title() {
    return "Sign in";
  }

  load() {
    this.root.querySelector("input[name=email]")?.focus();
  }

  async submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    this.busy = true;
    this.error = "";
    this.update();
    try {
      const answer = await api.post("/auth/token", { email: form.get("email"), password: form.get("password") });
      session.signIn(answer.access_token);
    } catch (error) {
      this.error = error instanceof ApiError && error.status === 401 ? "Wrong email or password." : error.message;
      this.busy = false;
      this.update();
    }
  }

  template() {
    return html`<section class="card sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Sign in to Pulse</h1>
      ${session.message ? html`<p class="notice notice-warning" role="alert" data-session-message>${session.message}</p>` : nothing}
      <form id="login-form" @submit=${this.submit}>
        <div class="field"><label for="sign-in-email">Email</label>
          <input id="sign-in-email" name="email" type="email" autocomplete="username" required></div>
        <div class="field"><label for="sign-in-password">Password</label>
          <input id="sign-in-password" name="password" type="password" autocomplete="current-password" required></div>
        ${this.error ? html`<p class="field-error" role="alert">${this.error}</p>` : nothing}
        <button class="primary" type="submit" ?disabled=${this.busy}>${this.busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <p class="muted">The API is described at <a href="/api/v2/openapi.json">/api/v2/openapi.json</a>.</p>
    </section>`;
  }
}

class NotFoundView extends View {
  get title() {
    return "Not found";
  }

  template() {
    return html`<section class="card"><h1>No such page</h1><p><a href="#/alerts">Back to the alerts</a></p></section>`;
  }
}

class Console {
  constructor(root) {
    this.root = root;
    this.session = session;
    this.feed = new LiveFeed();
    this.view = null;
    this.notices = [];
    this.noticeId = 0;
  }

  get outlet() {
    return this.root.querySelector("#view");
  }

  start() {
    session.addEventListener("change", () => this.sessionChanged());
    this.feed.addEventListener("state", () => this.renderShell());
    window.addEventListener("hashchange", () => this.route());
    this.sessionChanged();
  }

  sessionChanged() {
    if (session.signedIn) this.feed.start();
    else this.feed.stop();
    this.route();
  }

  /** Say what an action did, in the page's live region (read out by screen readers too). */
  notify(text, kind = "ok") {
    const id = (this.noticeId += 1);
    this.notices = [...this.notices, { id, text, kind }].slice(-3);
    this.renderShell();
    setTimeout(() => this.dismiss(id), kind === "error" ? 15000 : 8000);
  }

  dismiss(id) {
    this.notices = this.notices.filter((notice) => notice.id !== id);
    this.renderShell();
  }

  route() {
    const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
    if (this.view) this.view.stop();
    if (!session.signedIn) {
      this.view = new SignInView(this);
    } else if (!path) {
      location.replace("#/alerts");
      return;
    } else {
      const found = match(path);
      this.view = found ? new found.page(this, found.params, new URLSearchParams(search)) : new NotFoundView(this);
    }
    this.section = path.split("/")[0];
    this.renderShell();
    document.title = `${this.view.title} · Pulse`;
    // Focus moves to the new page (screen readers announce it); a page may then take it.
    this.outlet.focus({ preventScroll: true });
    this.view.start();
  }

  renderShell() {
    const claims = session.claims;
    const feedLabel = { live: "Live", connecting: "Connecting", offline: "Offline" }[this.feed.state];
    render(
      html`<header class="top">
          <a class="brand" href="#/alerts">Pulse</a>
          ${session.signedIn
            ? html`<nav aria-label="Sections"><ul>
                  ${SECTIONS.map(([section, label]) => html`<li><a href=${`#/${section}`} aria-current=${this.section === section ? "page" : nothing}>${label}</a></li>`)}
                </ul></nav>
                <div class="who">
                  <span class="feed feed-${this.feed.state}" role="status" title="live feed">${feedLabel}</span>
                  <span class="identity" title=${`tenant ${claims?.tenant_id}`}><span class="subject">${claims?.sub}</span>
                    <span class="role">${session.canWrite ? "admin" : "viewer · read-only"}</span></span>
                  <button type="button" class="quiet" @click=${() => session.signOut()}>Sign out</button>
                </div>`
            : nothing}
        </header>
        <div class="notices" aria-live="polite">
          ${this.notices.map((notice) => html`<p class="notice notice-${notice.kind}">${notice.text}
            <button type="button" class="quiet" aria-label="Dismiss" @click=${() => this.dismiss(notice.id)}>×</button></p>`)}
        </div>
        <main id="view" tabindex="-1"></main>`,
      this.root,
    );
  }
}

new Console(document.getElementById("console")).start();
