// What every page of the console shares: rendering into the outlet, timers and listeners that
// end when the operator leaves the page.

import { browserErrors } from "./forms.js";
import { formSummary, render, sortErrors } from "./ui.js";

export class View {
  /** `params` come from the route's path, `query` from the part of the hash after `?`. */
  constructor(app, params = {}, query = new URLSearchParams()) {
    this.app = app;
    this.params = params;
    this.query = query;
    this.stopped = false;
    this.cleanups = [];
    this.error = null;
    // A root of the page's own: lit-html keeps a rendering's options (the `this` of event
    // handlers) per container, so each page renders into a fresh one.
    this.root = document.createElement("div");
  }

  get title() {
    return "Pulse";
  }

  get canWrite() {
    return this.app.session.canWrite;
  }

  start() {
    this.app.outlet.replaceChildren(this.root);
    this.update();
    this.load();
  }

  /** Fetch what the page shows; subclasses override it. */
  load() {}

  /** Run `work` (it fetches what the page shows), keep its failure as the page's error, render. */
  async attempt(work) {
    try {
      await work();
      this.error = null;
    } catch (error) {
      this.error = error;
    }
    this.update();
  }

  /**
   * Do what the operator asked (`work`), then say so and run `then`; on failure say why.
   * Returns whether it worked.
   */
  async act(work, said, then = () => {}) {
    try {
      await work();
    } catch (error) {
      this.app.notify(error.message, "error");
      return false;
    }
    this.app.notify(said);
    then();
    return true;
  }

  update() {
    if (this.stopped) return;
    render(this.template(), this.root, { host: this });
  }

  stop() {
    this.stopped = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  every(milliseconds, callback) {
    const timer = setInterval(callback, milliseconds);
    this.cleanups.push(() => clearInterval(timer));
  }

  listen(target, type, callback) {
    target.addEventListener(type, callback);
    this.cleanups.push(() => target.removeEventListener(type, callback));
  }
}

/** A page with a form: the browser's checks first, then the API's 422 shown field by field. */
export class FormView extends View {
  constructor(...args) {
    super(...args);
    this.errors = new Map();
    this.problem = null;
    this.saving = false;
  }

  /** True when the browser finds nothing wrong with `form`; otherwise its errors are shown. */
  checked(form) {
    this.errors = browserErrors(form);
    this.problem = null;
    if (this.errors.size) this.update();
    return this.errors.size === 0;
  }

  /** The API refused the form: each error goes next to its field, the rest above the form. */
  refused(error, fieldNames) {
    const sorted = sortErrors(error.errors, fieldNames);
    this.errors = sorted.byField;
    this.problem = { message: error.message, unmatched: sorted.unmatched };
    this.saving = false;
    this.update();
    this.root.querySelector("[aria-invalid=true]")?.focus();
  }

  summary() {
    return formSummary(this.problem);
  }
}
