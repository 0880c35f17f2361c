"""The operator console at `/`: one HTML page that loads a small JavaScript app from app/static/.

The page holds no data and the blueprint no logic: the app signs in through POST
/api/v2/auth/token, keeps the token in the tab's session storage and reads and changes
everything through the same public API and WebSocket any client uses. Its ES modules are
served as they are (no build step); the libraries it uses are vendored under
app/static/vendor/ (see the README there).
"""

from __future__ import annotations

from flask import Blueprint, Flask, make_response, render_template

bp = Blueprint("ui", __name__)

# Everything the console loads comes from Pulse itself; no inline script or style can run.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@bp.get("/")
def console():
    """The console's page; the app it loads does the rest."""
    response = make_response(render_template("console.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
