// Who is signed in: the bearer token, kept in this tab's session storage (never in a URL or a
// cookie), its claims, and the moment it expires.

const STORAGE_KEY = "pulse-token";

function decodeClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

class Session extends EventTarget {
  constructor() {
    super();
    this.token = null;
    this.claims = null;
    this.message = "";
    this._expiryTimer = null;
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) this._adopt(stored);
  }

  get signedIn() {
    return Boolean(this.token);
  }

  /** Admins change things; viewers (and anyone else) only look. */
  get canWrite() {
    return this.claims?.role === "customer_admin";
  }

  get isViewer() {
    return this.claims?.role === "customer_viewer";
  }

  signIn(token) {
    sessionStorage.setItem(STORAGE_KEY, token);
    this.message = "";
    this._adopt(token);
    this.dispatchEvent(new Event("change"));
  }

  /** Forget the token; `message` is shown above the sign-in form. */
  signOut(message = "") {
    if (!this.token && !message) return;
    clearTimeout(this._expiryTimer);
    sessionStorage.removeItem(STORAGE_KEY);
    this.token = null;
    this.claims = null;
    this.message = message;
    this.dispatchEvent(new Event("change"));
  }

  /** The API or the live feed refused the token: back to the sign-in form, saying why. */
  expire() {
    if (this.token) this.signOut("Your session has expired. Sign in again to continue.");
  }

  _adopt(token) {
    this.token = token;
    this.claims = decodeClaims(token);
    clearTimeout(this._expiryTimer);
    const expiresAt = (this.claims?.exp ?? 0) * 1000;
    // The server accepts a token up to 30 s past `exp`; the console stops at `exp` itself.
    const remaining = expiresAt - Date.now();
    if (remaining <= 0) {
      this.token = null;
      this.claims = null;
      sessionStorage.removeItem(STORAGE_KEY);
      this.message = "Your session has expired. Sign in again to continue.";
      return;
    }
    // setTimeout holds at most 2^31-1 ms; a token living longer is re-checked by the API.
    this._expiryTimer = setTimeout(() => this.expire(), Math.min(remaining, 2 ** 31 - 1));
  }
}

export const session = new Session();
