"""Every HTTP-based sender meets the same answers from a real receiver and classifies them alike.

One table of scripted outcomes (statuses, a hang, a refused connection) runs through the
webhook, Slack, PagerDuty and Teams senders; each must end in success, TransientError or
PermanentError exactly as the shared classifier says, honour `Retry-After`, and keep its
secret out of the error text.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from werkzeug import Request, Response

from app.channels.base import Notification, SendContext, Sender
from app.channels.errors import DeliveryError, PermanentError, TransientError
from app.channels.pagerduty import PagerDutyConfig, PagerDutySender
from app.channels.slack import SlackConfig, SlackSender
from app.channels.teams import TeamsConfig, TeamsSender
from app.channels.webhook import WebhookConfig, WebhookSender
from app.config import DeliverySettings

# The bound is on a whole attempt, so it also covers this process's own pauses (a full
# garbage collection of the suite's heap takes up to half a second here): 0.5 s left none.
TIMEOUT_SECONDS = 2.0
SLOW_ANSWER_SECONDS = 4.0
PATH = "/hooks/T0OUTCOMES/B0OUTCOMES/sEcReTpAtHtOkEn0123456789"
INTEGRATION_KEY = "R0OUTCOMESINTEGRATIONKEY01234567"
SIGNING_SECRET = "outcomes-signing-secret"

NOTIFICATION = Notification(
    payload={
        "alert_id": 7,
        "alert_type": "door_open",
        "severity": 3,
        "severity_label": "HIGH",
        "device_id": "door-2",
        "site_id": "depot-1",
        "tenant_id": "acme",
        "message": "Door open for 10 minutes",
        "details": {"minutes": 10},
        "triggered_at": "2025-03-01T12:00:00+00:00",
        "event_type": "OPEN",
        "job_id": 77,
    },
    message_id="77",
)


@dataclass(frozen=True)
class Target:
    """One HTTP-based sender, pointed at a URL, and the secrets its errors must never show."""

    name: str
    sender: Sender
    config_for: Callable[[str], Any]
    secrets: tuple[str, ...]
    events_url_setting: bool = False

    def send(self, url: str, allow_private: bool = True):
        settings = DeliverySettings(
            allow_private_destinations=allow_private,
            timeout_seconds=TIMEOUT_SECONDS,
            pagerduty_events_url=url if self.events_url_setting else DeliverySettings.pagerduty_events_url,
        )
        return self.sender.send(self.config_for(url), NOTIFICATION, SendContext(settings))


URL_SECRETS = ("sEcReTpAtHtOkEn", "B0OUTCOMES")

TARGETS = [
    Target("webhook", WebhookSender(), lambda url: WebhookConfig(url=url, secret=SIGNING_SECRET), (SIGNING_SECRET,)),
    Target("slack", SlackSender(), lambda url: SlackConfig(webhook_url=url), URL_SECRETS),
    Target(
        "pagerduty",
        PagerDutySender(),
        lambda url: PagerDutyConfig(integration_key=INTEGRATION_KEY),
        (INTEGRATION_KEY,),
        events_url_setting=True,
    ),
    Target("teams", TeamsSender(), lambda url: TeamsConfig(webhook_url=url), URL_SECRETS),
]


def answer(status: int, headers: dict[str, str] | None = None) -> Callable[[Request], Response]:
    # The body quotes the request path, as many servers' error pages do: a secret URL must
    # still not reach the error text.
    body = "" if status == 204 else f"scripted {status} for {PATH}"
    return lambda request: Response(body, status=status, headers=headers or {})


def hang(request: Request) -> Response:
    time.sleep(SLOW_ANSWER_SECONDS)
    return Response("too late", status=200)


@dataclass(frozen=True)
class Outcome:
    """A scripted receiver behaviour and what every sender must make of it (None: success)."""

    name: str
    handler: Callable[[Request], Response] | None
    expected: type[DeliveryError] | None
    retry_after: float | None = None
    status_code: int | None = field(default=None)


# The shared classifier's semantics: 2xx ok; 408, 429 and 5xx transient; other statuses
# permanent; a hang or a refused connection transient. No sender departs from it for these
# answers: Slack's 404/410 and Teams' 404/410 are permanent under it already, and the
# scripted bodies carry none of Slack's error codes or Teams' connector refusals.
OUTCOMES = [
    Outcome("200", answer(200), None, status_code=200),
    Outcome("202", answer(202), None, status_code=202),
    Outcome("204", answer(204), None, status_code=204),
    Outcome("301", answer(301, {"Location": "http://127.0.0.1:1/elsewhere"}), PermanentError, status_code=301),
    Outcome("400", answer(400), PermanentError, status_code=400),
    Outcome("401", answer(401), PermanentError, status_code=401),
    Outcome("404", answer(404), PermanentError, status_code=404),
    Outcome("408", answer(408), TransientError, status_code=408),
    Outcome("410", answer(410), PermanentError, status_code=410),
    Outcome("429-with-retry-after", answer(429, {"Retry-After": "17"}), TransientError, retry_after=17, status_code=429),
    Outcome("429-without-retry-after", answer(429), TransientError, status_code=429),
    Outcome("500", answer(500), TransientError, status_code=500),
    Outcome("502", answer(502), TransientError, status_code=502),
    Outcome("503", answer(503), TransientError, status_code=503),
    Outcome("timeout", hang, TransientError),
    Outcome("connection-refused", None, TransientError),
]


@pytest.fixture
def receiver(http_peer):
    """The receiver with no expectations and an empty request log."""
    return http_peer


@pytest.fixture(scope="module")
def refused_url():
    """A URL whose port is bound but not listening: connecting is refused, and no one can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}{PATH}"
    sock.close()


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda outcome: outcome.name)
def test_every_http_sender_classifies_the_same_answer_alike(receiver, refused_url, outcome, target):
    if outcome.handler is None:
        url = refused_url
    else:
        receiver.expect_request(PATH, method="POST").respond_with_handler(outcome.handler)
        url = receiver.url_for(PATH)

    if outcome.expected is None:
        result = target.send(url)
        assert result.status_code == outcome.status_code
        assert len(receiver.log) == 1
        for secret in target.secrets:
            assert secret not in (result.detail or "")
        return

    with pytest.raises(DeliveryError) as caught:
        target.send(url)

    error = caught.value
    assert type(error) is outcome.expected, f"{target.name} gave {type(error).__name__}: {error}"
    assert error.status_code == outcome.status_code
    if outcome.expected is TransientError:
        assert error.retry_after == outcome.retry_after
    for secret in target.secrets:
        assert secret not in str(error)


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_every_http_sender_refuses_loopback_unless_private_destinations_are_allowed(receiver, target):
    receiver.expect_request(PATH).respond_with_data("ok")

    with pytest.raises(PermanentError) as caught:
        target.send(receiver.url_for(PATH), allow_private=False)

    assert "loopback" in str(caught.value)
    assert receiver.log == []


@pytest.fixture(scope="module")
def untrusted_tls_url(tmp_path_factory):
    """An HTTPS server whose self-signed certificate no configured CA vouches for."""
    import http.server
    import threading

    from tests.tls import make_self_signed_certificate

    certificate = make_self_signed_certificate(tmp_path_factory.mktemp("untrusted"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}{PATH}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_every_http_sender_treats_an_untrusted_certificate_as_permanent(untrusted_tls_url, target):
    with pytest.raises(PermanentError, match="TLS certificate of .* cannot be verified") as failure:
        target.send(untrusted_tls_url)
    for secret in target.secrets:
        assert secret not in str(failure.value)
