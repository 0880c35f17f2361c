"""No receiver and no channel setting can hold a delivery attempt beyond its bound (DESIGN §5a).

Bounded attempts: DELIVERY_TIMEOUT_SECONDS bounds a whole attempt of every channel type, not
each read. Real peers stall at each stage (accept and never answer, trickle the headers, the
body, the TLS handshake, the SMTP greeting, the MQTT CONNACK; a resolver that never answers)
and every attempt must end as a transient timeout: with a bound on each read only, each of
these peers gets its byte in time and the attempt would go on for minutes, or succeed. An
answer far larger than 64 KiB is cut, not read.

Trust anchors: a channel's CAs are PEM text (`ca_pem`) or a regular PEM file inside
TRUSTED_CA_DIR (`ca_file`); anything else is refused when the channel is saved, and a file
that turned into something else since is refused at send time, at once: a FIFO or a
`/proc` path never blocks a worker thread or the web process inside OpenSSL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from app import create_app
from app.channels.base import SendContext
from app.channels.email import EmailConfig, EmailSender
from app.channels.errors import TransientError
from app.channels.mqtt import ConnectionPool, MqttConfig, MqttSender
from app.channels.pagerduty import PagerDutyConfig, PagerDutySender
from app.channels.slack import SlackConfig, SlackSender
from app.channels.snmp import SnmpConfig, SnmpSender
from app.channels.teams import TeamsConfig, TeamsSender
from app.channels.webhook import WebhookConfig, WebhookSender
from app.config import DeliverySettings
from tests.smtp import start_controller
from tests.stalling import EndlessAnswer, Peer, TlsServer, TrickleAnswer, TrickleRelay
from tests.support import (
    create_channel,
    create_rule,
    deliveries,
    make_tenant,
    post_alert,
    sample_notification,
    settled,
    wait_for,
)
from tests.tls import make_self_signed_certificate
from tests.webserver import WebServer

# --- Bounded attempts ------------------------------------------------------------------------

TIMEOUT = 1.0
CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=TIMEOUT))


@pytest.fixture
def peers():
    """Start misbehaving peers (tests.stalling); all are stopped after the test."""
    started = []

    def start(peer: Peer) -> Peer:
        started.append(peer.start())
        return peer

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_self_signed_certificate(tmp_path_factory.mktemp("bounded-tls"))


@pytest.fixture
def tls_server(peers, certificate):
    """A real TLS server, for a relay to trickle its handshake."""
    return peers(TlsServer(context=certificate.server_context()))


def http_send(kind: str, url: str, context: SendContext = CONTEXT):
    """One attempt of an HTTP-based channel type at `url`."""
    if kind == "pagerduty":
        settings = replace(context.settings, pagerduty_events_url=url)
        return PagerDutySender().send(PagerDutyConfig(integration_key="R0BOUNDED"), sample_notification(), SendContext(settings))
    sender, config = {
        "webhook": (WebhookSender(), lambda: WebhookConfig(url=url)),
        "slack": (SlackSender(), lambda: SlackConfig(webhook_url=url)),
        "teams": (TeamsSender(), lambda: TeamsConfig(webhook_url=url)),
    }[kind]
    return sender.send(config(), sample_notification(), context)


HTTP_KINDS = ["webhook", "slack", "teams", "pagerduty"]
STATUS_LINE_TRICKLE = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 60 + b"\r\nContent-Length: 2\r\n\r\nok"


def http_stage(stage: str, peers, tls_server) -> str:
    """The URL of a receiver that stalls at `stage`."""
    if stage == "accepts and never answers":
        return f"http://127.0.0.1:{peers(Peer()).port}/hook"
    if stage == "trickles its status line and headers":
        return f"http://127.0.0.1:{peers(TrickleAnswer(head=b'', body=STATUS_LINE_TRICKLE)).port}/hook"
    if stage == "sends its headers, then trickles the body":
        return f"http://127.0.0.1:{peers(TrickleAnswer()).port}/hook"
    if stage == "trickles the TLS handshake":
        return f"https://127.0.0.1:{peers(TrickleRelay(upstream=tls_server.port, interval=0.05)).port}/hook"
    raise AssertionError(stage)


HTTP_STAGES = [
    "accepts and never answers",
    "trickles its status line and headers",
    "sends its headers, then trickles the body",
    "trickles the TLS handshake",
]


@pytest.mark.parametrize("stage", HTTP_STAGES)
@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_an_http_attempt_that_stalls_at_any_stage_ends_as_a_transient_timeout(peers, tls_server, kind, stage):
    url = http_stage(stage, peers, tls_server)

    with pytest.raises(TransientError) as failure:
        http_send(kind, url)

    assert f"timed out after {TIMEOUT:g} s" in str(failure.value)


@pytest.mark.parametrize("status, error", [("200 OK", None), ("500 Internal Server Error", TransientError)])
def test_at_most_64_kib_of_an_answer_is_read(peers, status, error):
    peer = peers(EndlessAnswer(status=status))
    url = f"http://127.0.0.1:{peer.port}/hook"

    # Time to spare: the cap, not the bound, must end this attempt.
    context = SendContext(replace(CONTEXT.settings, timeout_seconds=10))
    if error is None:
        assert http_send("webhook", url, context).status_code == 200
    else:
        with pytest.raises(error, match="answered 500"):
            http_send("webhook", url, context)

    assert peer.finished.wait(10), "the receiver is still sending: its answer is being read on"
    assert peer.sent < peer.size


@pytest.fixture
def smtp_server():
    """Start aiosmtpd servers on 127.0.0.1 with a given handler; all are stopped after the test."""
    controllers = []

    def start(handler=None) -> int:
        controller = start_controller(handler or object())
        controllers.append(controller)
        return controller.port

    yield start
    for controller in controllers:
        controller.stop()


class StallsAfterEhlo:
    """An SMTP server that greets, then never answers EHLO."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        await asyncio.sleep(3600)


def email_send(port: int, **smtp):
    config = EmailConfig.model_validate(
        {
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "from": "pulse@example.com", **smtp},
            "recipients": {"to": ["ops@example.com"]},
        }
    )
    return EmailSender().send(config, sample_notification(), CONTEXT)


def smtp_stage(stage: str, peers, smtp_server, tls_server) -> tuple[int, dict]:
    if stage == "accepts and never greets":
        return peers(Peer()).port, {}
    if stage == "stalls after EHLO":
        return smtp_server(StallsAfterEhlo()), {}
    if stage == "trickles its greeting":
        return peers(TrickleRelay(upstream=smtp_server(), interval=0.05)).port, {}
    if stage == "trickles the TLS handshake":
        return peers(TrickleRelay(upstream=tls_server.port, interval=0.05)).port, {"security": "tls", "verify_tls": False}
    raise AssertionError(stage)


@pytest.mark.parametrize("stage", ["accepts and never greets", "stalls after EHLO", "trickles its greeting", "trickles the TLS handshake"])
def test_an_smtp_dialogue_that_stalls_anywhere_ends_as_a_transient_timeout(peers, smtp_server, tls_server, stage):
    port, smtp = smtp_stage(stage, peers, smtp_server, tls_server)

    with pytest.raises(TransientError) as failure:
        email_send(port, **smtp)

    assert f"did not answer within {TIMEOUT:g} s" in str(failure.value)


@pytest.fixture
def mqtt_pool():
    pool = ConnectionPool()
    yield pool
    pool.close()


def mqtt_stage(stage: str, peers, tls_server) -> dict:
    if stage == "accepts and never sends CONNACK":
        return {"port": peers(Peer()).port}
    if stage == "trickles its CONNACK":
        # Each of the CONNACK's four bytes comes within the bound; all four do not.
        return {"port": peers(TrickleRelay(upstream=1883, interval=0.4)).port}
    if stage == "trickles the TLS handshake":
        return {"port": peers(TrickleRelay(upstream=tls_server.port, interval=0.05)).port, "tls": True, "verify_tls": False}
    raise AssertionError(stage)


@pytest.mark.parametrize("stage", ["accepts and never sends CONNACK", "trickles its CONNACK", "trickles the TLS handshake"])
def test_an_mqtt_connection_that_stalls_anywhere_ends_as_a_transient_timeout(peers, tls_server, mqtt_pool, stage):
    config = MqttConfig(host="127.0.0.1", **mqtt_stage(stage, peers, tls_server))

    with pytest.raises(TransientError) as failure:
        MqttSender(pool=mqtt_pool).send(config, sample_notification(), CONTEXT)

    assert "did not accept the connection in time" in str(failure.value)
    assert mqtt_pool.clients() == []


UNANSWERED = "stalls.pulse-test.example"


@pytest.fixture
def unanswered_lookup(monkeypatch):
    """The name UNANSWERED, whose lookup never returns while the test runs.

    A test cannot own this machine's DNS: the C library's lookup is replaced for this one name
    by one that waits, as a resolver that never answers makes getaddrinfo() wait.
    """
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host == UNANSWERED and not flags & socket.AI_NUMERICHOST:
            release.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield UNANSWERED
    release.set()


def send_to_host(kind: str, host: str):
    if kind in HTTP_KINDS:
        return http_send(kind, f"http://{host}/hook")
    if kind == "email":
        config = EmailConfig.model_validate(
            {"smtp": {"host": host, "security": "none", "from": "pulse@example.com"}, "recipients": {"to": ["ops@example.com"]}}
        )
        return EmailSender().send(config, sample_notification(), CONTEXT)
    if kind == "mqtt":
        pool = ConnectionPool()
        try:
            return MqttSender(pool=pool).send(MqttConfig(host=host), sample_notification(), CONTEXT)
        finally:
            pool.close()
    return SnmpSender().send(SnmpConfig(host=host, community="public"), sample_notification(), CONTEXT)


@pytest.mark.parametrize("kind", [*HTTP_KINDS, "email", "mqtt", "snmp"])
def test_a_name_lookup_that_never_answers_ends_the_attempt_as_a_transient_error(unanswered_lookup, kind):
    with pytest.raises(TransientError) as failure:
        send_to_host(kind, unanswered_lookup)

    assert "cannot resolve" in str(failure.value) and f"within {TIMEOUT:g} s" in str(failure.value)


def test_a_trickling_receiver_fails_its_job_while_the_worker_delivers_to_others(client, tenant, worker, receiver, peers):
    trickle = peers(TrickleAnswer(interval=0.2, body=b"x" * 2000))
    slow = create_channel(client, tenant, "webhook", {"url": f"http://127.0.0.1:{trickle.port}/hook"}, name="slow")
    fast = create_channel(client, tenant, "webhook", {"url": receiver.url()}, name="fast")
    for channel in (slow, fast):
        create_rule(client, tenant, channel["channel_id"])

    post_alert(client, tenant)
    jobs = {job["channel_id"]: job for job in wait_for(lambda: settled(client, tenant, 2), 90, message="both jobs to settle")}

    assert jobs[fast["channel_id"]]["status"] == "DELIVERED"
    assert jobs[slow["channel_id"]]["status"] == "FAILED" and "timed out" in jobs[slow["channel_id"]]["last_error"]
    assert trickle.sent < 2000 and len(deliveries(client, tenant)) == 2


def test_the_web_process_ends_a_test_send_to_a_trickling_receiver_and_keeps_serving(app, peers):
    trickle = peers(TrickleAnswer(interval=0.2, body=b"x" * 2000))
    tenant = make_tenant(app)
    server = WebServer("trickle")
    server.start()
    try:
        created = requests.post(
            f"{server.url}/api/v2/channels",
            json={"name": "slow", "channel_type": "webhook", "config": {"url": f"http://localhost:{trickle.port}/hook"}},
            headers=tenant.admin,
            timeout=10,
        )
        assert created.status_code == 201, created.text

        test = requests.post(f"{server.url}/api/v2/channels/{created.json()['channel_id']}/test", headers=tenant.admin, timeout=60)

        assert test.status_code == 502 and "timed out" in test.json()["detail"]
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()


# --- Trust anchors that cannot block ---------------------------------------------------------

def email_config(**smtp) -> dict:
    """An email channel whose SMTP server speaks STARTTLS; nothing listens there."""
    return {
        "smtp": {"host": "127.0.0.1", "port": 9, "security": "starttls", "from": "pulse@example.com", **smtp},
        "recipients": {"to": ["ops@example.com"]},
    }


def mqtt_config(**tls) -> dict:
    return {"host": "127.0.0.1", "port": 9, "tls": True, **tls}


# (channel type, config with the trust settings given, where those settings sit in the config)
KINDS = {"email": (email_config, "config.smtp."), "mqtt": (mqtt_config, "config.")}


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory) -> str:
    return make_self_signed_certificate(tmp_path_factory.mktemp("ca")).cert_file.read_text()


@pytest.fixture
def trusted_dir(tmp_path) -> Path:
    directory = tmp_path / "trusted"
    directory.mkdir()
    return directory


@pytest.fixture
def trusting_app(app, trusted_dir):
    """The app as a process with TRUSTED_CA_DIR set to `trusted_dir` runs it."""
    settings = app.extensions["pulse"].settings
    application = create_app(replace(settings, delivery=replace(settings.delivery, trusted_ca_dir=str(trusted_dir))))
    yield application
    application.extensions["pulse"].db.dispose()


@pytest.fixture
def trusting_client(trusting_app):
    return trusting_app.test_client()


def refused_field(response, field: str) -> str:
    """The message of the 422 about `field`; fails unless that is what the answer is."""
    assert response.status_code == 422, response.get_json()
    messages = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    assert field in messages, messages
    return messages[field]


NOT_CERTIFICATES = {
    "plain text": "my CA is the one from IT",
    "a private key": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIB0pe8aqWEvHwsV7mV1r7c1rYb0rGJ8PDn0YI8qz9sJ6\n-----END PRIVATE KEY-----\n",
    "a broken certificate": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", NOT_CERTIFICATES.values(), ids=NOT_CERTIFICATES.keys())
def test_ca_pem_that_is_not_pem_certificates_is_422_naming_the_field(client, db, tenant, kind, text):
    config, prefix = KINDS[kind]
    response = client.post(
        "/api/v2/channels", json={"name": "ca", "channel_type": kind, "config": config(ca_pem=text)}, headers=tenant.admin
    )

    assert "CERTIFICATE" in refused_field(response, prefix + "ca_pem")
    assert client.get("/api/v2/channels", headers=tenant.admin).get_json()["items"] == []


def trust_settings(channel: dict) -> dict:
    """The part of a channel's answered config that holds its trust settings."""
    return channel["config"]["smtp"] if channel["channel_type"] == "email" else channel["config"]


@pytest.mark.parametrize("kind", KINDS)
def test_ca_pem_with_certificates_is_accepted_and_answered(client, tenant, ca_pem, kind):
    config, prefix = KINDS[kind]

    channel = create_channel(client, tenant, kind, config(ca_pem=ca_pem))

    assert trust_settings(channel)["ca_pem"] == ca_pem


@pytest.mark.parametrize("kind", KINDS)
def test_ca_file_is_refused_while_trusted_ca_dir_is_unset(client, tenant, kind):
    config, prefix = KINDS[kind]
    response = client.post(
        "/api/v2/channels",
        json={"name": "ca", "channel_type": kind, "config": config(ca_file="/etc/ssl/certs/ca-certificates.crt")},
        headers=tenant.admin,
    )

    assert "TRUSTED_CA_DIR" in refused_field(response, prefix + "ca_file")


def outside_file(trusted_dir: Path, ca_pem: str) -> str:
    path = trusted_dir.parent / "elsewhere.pem"
    path.write_text(ca_pem)
    return str(path)


def link_to_outside(trusted_dir: Path, ca_pem: str) -> str:
    link = trusted_dir / "link.pem"
    link.symlink_to(outside_file(trusted_dir, ca_pem))
    return str(link)


def fifo(trusted_dir: Path, ca_pem: str) -> str:
    path = trusted_dir / "fifo.pem"
    os.mkfifo(path)
    return str(path)


def not_pem(trusted_dir: Path, ca_pem: str) -> str:
    path = trusted_dir / "notes.txt"
    path.write_text("not a certificate")
    return str(path)


def too_large(trusted_dir: Path, ca_pem: str) -> str:
    path = trusted_dir / "huge.pem"
    path.write_text(ca_pem * (2 * 1024 * 1024 // len(ca_pem)))
    return str(path)


BAD_CA_FILES = {
    "a file outside the directory": outside_file,
    "a symlink out of the directory": link_to_outside,
    "a FIFO inside the directory": fifo,
    "the directory itself": lambda trusted_dir, ca_pem: str(trusted_dir),
    "standard output of the process": lambda trusted_dir, ca_pem: "/proc/self/fd/1",
    "a path climbing out with ..": lambda trusted_dir, ca_pem: f"{trusted_dir}/../{Path(outside_file(trusted_dir, ca_pem)).name}",
    "a relative path": lambda trusted_dir, ca_pem: "ca.pem",
    "a file that is not PEM": not_pem,
    "a file over the size cap": too_large,
    "a missing file": lambda trusted_dir, ca_pem: str(trusted_dir / "missing.pem"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_path", BAD_CA_FILES.values(), ids=BAD_CA_FILES.keys())
def test_ca_file_that_is_not_a_regular_pem_file_inside_trusted_ca_dir_is_422(
    trusting_client, tenant, trusted_dir, ca_pem, kind, make_path
):
    config, prefix = KINDS[kind]
    path = make_path(trusted_dir, ca_pem)

    response = trusting_client.post(
        "/api/v2/channels", json={"name": "ca", "channel_type": kind, "config": config(ca_file=path)}, headers=tenant.admin
    )

    refused_field(response, prefix + "ca_file")
    assert trusting_client.get("/api/v2/channels", headers=tenant.admin).get_json()["items"] == []


def channel_with_ca_file(client, tenant, trusted_dir: Path, ca_pem: str, kind: str) -> tuple[dict, Path]:
    """A channel of `kind` trusting a CA file written into `trusted_dir`, and that file."""
    config, prefix = KINDS[kind]
    path = trusted_dir / "ca.pem"
    path.write_text(ca_pem)
    return create_channel(client, tenant, kind, config(ca_file=str(path))), path


@pytest.mark.parametrize("kind", KINDS)
def test_ca_file_inside_trusted_ca_dir_is_accepted(trusting_client, tenant, trusted_dir, ca_pem, kind):
    channel, path = channel_with_ca_file(trusting_client, tenant, trusted_dir, ca_pem, kind)

    assert trust_settings(channel)["ca_file"] == str(path)


@pytest.mark.parametrize("kind", KINDS)
def test_ca_file_replaced_by_a_fifo_fails_the_test_send_at_once(trusting_client, tenant, trusted_dir, ca_pem, kind):
    prefix = KINDS[kind][1]
    channel, path = channel_with_ca_file(trusting_client, tenant, trusted_dir, ca_pem, kind)
    path.unlink()
    os.mkfifo(path)

    response = trusting_client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)

    assert response.status_code == 502
    detail = response.get_json()["detail"]
    assert f"{prefix.removeprefix('config.')}ca_file" in detail and "not a regular file" in detail


def store_ca_file(db, channel: dict, kind: str, path: str) -> None:
    """Write `ca_file` straight into a stored config, as a channel saved before the check was."""
    from app.models import NotificationChannel

    with db.session(channel["tenant_id"]) as session:
        stored = session.get(NotificationChannel, channel["channel_id"])
        config = dict(stored.config)
        if kind == "email":
            config["smtp"] = {**config["smtp"], "ca_file": path}
        else:
            config["ca_file"] = path
        stored.config = config


@pytest.mark.parametrize("kind", KINDS)
def test_a_stored_ca_file_naming_proc_fails_in_the_worker_and_the_test_send(client, db, tenant, worker, kind):
    config, prefix = KINDS[kind]
    channel = create_channel(client, tenant, kind, config())
    store_ca_file(db, channel, kind, "/proc/self/fd/1")
    create_rule(client, tenant, channel["channel_id"])

    post_alert(client, tenant)
    [job] = wait_for(lambda: settled(client, tenant, 1), message="the job to settle")
    test = client.post(f"/api/v2/channels/{channel['channel_id']}/test", headers=tenant.admin)

    assert job["status"] == "FAILED" and "ca_file" in job["last_error"]
    assert test.status_code == 502 and "ca_file" in test.get_json()["detail"]


def test_the_web_process_answers_a_fifo_ca_file_with_502_and_keeps_serving(app, tmp_path, ca_pem):
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    path = trusted / "ca.pem"
    path.write_text(ca_pem)
    tenant = make_tenant(app)
    server = WebServer("trust", env={"TRUSTED_CA_DIR": str(trusted)})
    server.start()
    try:
        created = requests.post(
            f"{server.url}/api/v2/channels",
            json={"name": "ca", "channel_type": "email", "config": email_config(ca_file=str(path))},
            headers=tenant.admin,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        path.unlink()
        os.mkfifo(path)

        test = requests.post(f"{server.url}/api/v2/channels/{created.json()['channel_id']}/test", headers=tenant.admin, timeout=30)

        assert test.status_code == 502 and "not a regular file" in test.json()["detail"]
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
