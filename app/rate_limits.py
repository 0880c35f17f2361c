"""Rate limits (DESIGN §3, §5a): ingest per tenant, `POST /auth/token` per client address and per email.

Flask-Limiter keeps the counters in the Redis of `REDIS_URL` (production's Redis, or the
embedded one under `make run`), so every web process of a deployment shares them. The ingest
limit is checked with the `limits` library Flask-Limiter is built on, on the same storage
(`IngestLimit`: ingest is the hot path). Limits are attached here, by endpoint, when the app
is built from its settings: the views stay free of them, and `off` attaches nothing. Each
view declares 429 in its operation (the OpenAPI).

Over a limit the answer is 429 problem+json with an integer `Retry-After`, raised before the
view reads its body, so nothing is created. Ingest limits are checked after authentication
(they are the token's tenant's); the login limits before the password is checked.

Behind proxies the client address is the one `TRUSTED_PROXY_HOPS` trusted proxies added to
X-Forwarded-For (werkzeug's ProxyFix); with 0 it is the peer's address and the header is
ignored, so a client cannot pick its own address to escape the login limit.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Callable

from flask import Flask, Response, g, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from limits import RateLimitItem, parse_many
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings
from app.problems import Problem, problem_response

log = logging.getLogger(__name__)

# Alert opens, acknowledges, closes and telemetry posts: one budget per tenant (DESIGN §3).
INGEST_ENDPOINTS = ("api.alerts.open_alert", "api.alerts.acknowledge", "api.alerts.close", "api.telemetry.ingest")
LOGIN_ENDPOINT = "api.auth.token"
KEY_PREFIX = "pulse-rate"
MAX_EMAIL_KEY = 254


def storage_uri(redis_url: str) -> str:
    """The limits library's spelling of a Redis URL (a Unix socket is `redis+unix://`)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def _tenant() -> str:
    return "tenant:" + g.principal.tenant_id


def _address() -> str:
    return "address:" + (request.remote_addr or "unknown")


def _email() -> str:
    """The email the login names, as Pulse looks users up (trimmed, lower case)."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return "email:" + (email.strip().lower()[:MAX_EMAIL_KEY] if isinstance(email, str) else "")


def retry_after_seconds(reset_at: float) -> int:
    """Whole seconds until a limit whose window resets at `reset_at` lets the next request in (at least 1)."""
    # Not RequestLimit.reset_at, which rounds up by a whole second.
    return max(1, math.ceil(reset_at - time.time()))


def _too_many_for(item: RateLimitItem, reset_at: float) -> Response:
    retry_after = retry_after_seconds(reset_at)
    problem = Problem(
        429,
        f"rate limit of {item} exceeded; try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
    return problem_response(problem)


def _too_many(limit: RequestLimit) -> Response:
    # `window` is (reset time, remaining).
    return _too_many_for(limit.limit, limit.window[0])


class IngestLimit:
    """The tenant's ingest budget, checked with the `limits` library itself.

    Flask-Limiter is built on `limits`; its per-request work around the one check (resolving,
    filtering and deducting its limits, its request context) cost 0.08 ms of CPU per request
    over the same check made with `limits` directly (a bare Flask app, Redis storage), and
    ingest is the API's hot path. The strategy, and so the storage, are the Flask-Limiter
    instance's, which keeps checking the login limits.
    """

    SCOPE = "ingest"

    def __init__(self, limiter: Limiter, limits_text: str):
        self.limiter = limiter
        self.items = parse_many(limits_text)

    def exceeded(self, tenant: str) -> Response | None:
        """Count one request of `tenant`: the 429 answer if that goes over a limit, else None."""
        strategy = self.limiter.limiter
        try:
            for item in self.items:
                if not strategy.hit(item, KEY_PREFIX, tenant, self.SCOPE):
                    reset_at, _remaining = strategy.get_window_stats(item, KEY_PREFIX, tenant, self.SCOPE)
                    return _too_many_for(item, reset_at)
        except Exception as exc:  # as Flask-Limiter's swallow_errors: Redis down must not take ingest down
            log.warning("ingest rate limit not checked: %s", type(exc).__name__)
        return None

    def __call__(self, view: Callable) -> Callable:
        @functools.wraps(view)
        def limited(*args, **kwargs):
            answer = self.exceeded(_tenant())
            return answer if answer is not None else view(*args, **kwargs)

        return limited


def init_app(app: Flask, settings: Settings) -> Limiter:
    """Trust the configured proxies, and attach the ingest and login limits to their views."""
    if settings.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)
    limiter = Limiter(
        key_func=_address,
        storage_uri=storage_uri(settings.redis_url),
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
        strategy="moving-window",
        key_prefix=KEY_PREFIX,
        headers_enabled=False,
        on_breach=_too_many,
        # Redis down must not take ingest down with it (a 500): the request goes through
        # unlimited and the error is logged.
        swallow_errors=True,
    )
    limiter.init_app(app)
    app.extensions["rate_limits"] = limiter
    # Every limit is attached to its view below and checked by it. Flask-Limiter also checks
    # default and application-wide limits before every request; Pulse sets none, so that
    # check only resolved an empty set: 6% of the web's CPU per alert (profiled).
    if not (limiter.limit_manager.default_limits or limiter.limit_manager.application_limits):
        app.before_request_funcs[None].remove(limiter._check_request_limit)

    if settings.rate_limit_ingest != "off":
        ingest = IngestLimit(limiter, settings.rate_limit_ingest)
        for endpoint in INGEST_ENDPOINTS:
            app.view_functions[endpoint] = ingest(app.view_functions[endpoint])
    if settings.rate_limit_auth != "off":
        view = app.view_functions[LOGIN_ENDPOINT]
        view = limiter.limit(settings.rate_limit_auth, key_func=_email, scope="login-email")(view)
        view = limiter.limit(settings.rate_limit_auth, key_func=_address, scope="login-address")(view)
        app.view_functions[LOGIN_ENDPOINT] = view

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        if exc.response is not None:
            return exc.response
        return problem_response(Problem(429, "rate limit exceeded; try again shortly", headers={"Retry-After": "1"}))

    return limiter
