"""The operator console at `/`: a single page over the public API and the live feed.

It holds no logic of its own: it signs in through POST /api/v2/auth/token, keeps the token
in the browser's session storage, follows alerts over the WebSocket and reads and replays
deliveries through the same endpoints any client uses.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

bp = Blueprint("ui", __name__)


@bp.get("/")
def console():
    return render_template("console.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
