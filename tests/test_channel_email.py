"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import ValidationError

from app.channels.base import Notification, SendContext
from app.channels.email import EmailConfig, EmailSender
from app.channels.errors import PermanentError, TransientError
from app.config import DeliverySettings
from tests.smtp import start_controller
from tests.tls import Certificate, make_self_signed_certificate

try:
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:  # start_controller fails with what to install
    AuthResult = LoginPassword = None

USERNAME = "pulse-mailer"
PASSWORD = "correct-horse-battery-staple"
SENDER = EmailSender()
CONTEXT = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3))


def trusting(directory) -> SendContext:
    """CONTEXT with TRUSTED_CA_DIR set to `directory`, where a test's CA file lives."""
    return SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=3, trusted_ca_dir=str(directory)))


def payload(**overrides: Any) -> dict[str, Any]:
    """A notification payload as DESIGN §7 defines it."""
    values = {
        "alert_id": 7,
        "alert_type": "temperature_high",
        "severity": 4,
        "severity_label": "CRITICAL",
        "device_id": "sensor-12",
        "site_id": "plant-north",
        "tenant_id": "acme",
        "message": "Temperature 91.5 C above 80 C",
        "details": {"temperature": 91.5, "threshold": 80},
        "triggered_at": "2025-03-01T10:15:00+00:00",
        "event_type": "OPEN",
        "job_id": 42,
    }
    values.update(overrides)
    return values


def notification(message_id: str = "42", **overrides: Any) -> Notification:
    return Notification(payload=payload(**overrides), message_id=message_id)


def email_config(port: int, *, smtp: dict[str, Any] | None = None, **sections: Any) -> EmailConfig:
    """A valid config for the peer on `port`, plain SMTP unless `smtp` says otherwise."""
    plain = {"host": "127.0.0.1", "port": port, "security": "none", "from": "pulse@alerts.example.com"}
    config: dict[str, Any] = {
        "smtp": plain | (smtp or {}),
        "recipients": {
            "to": ["ops@example.com", "oncall@example.com"],
            "cc": ["lead@example.com"],
            "bcc": ["audit@example.com"],
        },
    }
    config.update(sections)
    return EmailConfig.model_validate(config)


def authenticator(server, session, envelope, mechanism, auth_data) -> Any:
    """Accepts exactly USERNAME / PASSWORD."""
    accepted = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers a failure itself (535) instead of staying silent.
    return AuthResult(success=accepted, handled=False, auth_data=USERNAME if accepted else None)


@dataclass
class Received:
    """One message the server accepted: envelope, parsed message and who logged in."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps what it accepts and answers a stage as told.

    `replies` maps "MAIL", "RCPT" or "DATA" to the reply for every command of that stage;
    `refuse` maps a recipient address to the reply for that recipient only.
    """

    replies: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if "MAIL" in self.replies:
            return self.replies["MAIL"]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "RCPT" in self.replies:
            return self.replies["RCPT"]
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if "DATA" in self.replies:
            return self.replies["DATA"]
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.auth_data))
        return "250 2.0.0 Ok: queued as PULSE42"


@dataclass
class SmtpPeer:
    port: int
    handler: RecordingHandler


@pytest.fixture
def start_smtp_server():
    """Start aiosmtpd servers on free ports of 127.0.0.1; all are stopped after the test."""
    controllers = []

    def start(handler: RecordingHandler | None = None, **options: Any) -> SmtpPeer:
        handler = handler or RecordingHandler()
        controller = start_controller(handler, **options)
        controllers.append(controller)
        return SmtpPeer(port=controller.port, handler=handler)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp_server) -> SmtpPeer:
    """A plain SMTP server that accepts everything."""
    return start_smtp_server()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    return make_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def starttls_server(start_smtp_server, certificate) -> SmtpPeer:
    """STARTTLS required before anything else; AUTH offered only once TLS is up."""
    return start_smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
        auth_required=True,
    )


@pytest.fixture
def implicit_tls_server(start_smtp_server, certificate) -> SmtpPeer:
    """TLS from the first byte (port 465 style), with AUTH."""
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; this connection is TLS throughout.
    return start_smtp_server(
        ssl_context=certificate.server_context(), authenticator=authenticator, auth_require_tls=False
    )


@pytest.fixture
def start_raw_peer():
    """A TCP peer on 127.0.0.1 that sends `greeting` (if any) to its one client, then hangs up."""
    listeners: list[socket.socket] = []

    def start(greeting: bytes | None) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listeners.append(listener)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                if greeting:
                    connection.sendall(greeting)

        threading.Thread(target=serve, daemon=True).start()
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()


def send(config: EmailConfig, message: Notification | None = None, context: SendContext = CONTEXT):
    return SENDER.send(config, message or notification(), context)


# Delivery and the message as received


def test_message_reaches_every_recipient_in_the_envelope_bcc_included(smtp_server):
    send(email_config(smtp_server.port))

    [received] = smtp_server.handler.received
    assert received.mail_from == "pulse@alerts.example.com"
    assert received.rcpt_tos == ["ops@example.com", "oncall@example.com", "lead@example.com", "audit@example.com"]


def test_headers_name_from_to_and_cc_but_never_bcc(smtp_server):
    send(email_config(smtp_server.port))

    message = smtp_server.handler.received[0].message
    assert message["From"] == "pulse@alerts.example.com"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message["Cc"] == "lead@example.com"
    assert message["Bcc"] is None
    assert b"audit@example.com" not in message.as_bytes()


def test_headers_identify_the_alert_and_mark_the_message_automatic(smtp_server):
    send(email_config(smtp_server.port))

    message = smtp_server.handler.received[0].message
    assert message["Message-ID"] == "<pulse-42@alerts.example.com>"
    assert message["Date"].datetime is not None
    assert message["X-Pulse-Alert-Id"] == "7"
    assert message["X-Pulse-Event"] == "OPEN"
    assert message["Auto-Submitted"] == "auto-generated"


def test_message_id_is_the_same_on_every_attempt_of_a_job(smtp_server):
    config = email_config(smtp_server.port)
    send(config, notification("42"))
    send(config, notification("42"))
    send(config, notification("43"))

    ids = [received.message["Message-ID"] for received in smtp_server.handler.received]
    assert ids[0] == ids[1] != ids[2]


def test_default_subject_names_severity_type_device_and_event(smtp_server):
    send(email_config(smtp_server.port), notification(event_type="ACKNOWLEDGED"))

    subject = smtp_server.handler.received[0].message["Subject"]
    assert subject == "[CRITICAL] temperature_high on sensor-12 (acknowledged)"


def test_default_body_lists_the_payload_fields_and_details(smtp_server):
    send(email_config(smtp_server.port))

    body = smtp_server.handler.received[0].message.get_content()
    for line in (
        "OPEN: Temperature 91.5 C above 80 C",
        "Severity:   CRITICAL (4)",
        "Alert type: temperature_high",
        "Device:     sensor-12",
        "Site:       plant-north",
        "Tenant:     acme",
        "Triggered:  2025-03-01T10:15:00+00:00",
        "Alert id:   7",
        "  temperature: 91.5",
        "  threshold: 80",
    ):
        assert line in body.splitlines()


def test_default_body_of_a_test_send_says_it_is_a_test(smtp_server):
    send(email_config(smtp_server.port), notification("test-5f0c", event_type="TEST", job_id=None))

    received = smtp_server.handler.received[0].message
    assert received.get_content().startswith("This is a test message from Pulse")
    assert received["Message-ID"] == "<pulse-test-5f0c@alerts.example.com>"


def test_custom_templates_render_payload_fields_and_details(smtp_server):
    template = {
        "subject": "{{ severity_label|title }}: {{ message }}",
        "body": "Device {{ device_id }} at {{ site_id }}\nRunbook: {{ details.runbook|default('none') }}\n",
    }
    send(email_config(smtp_server.port, template=template), notification(details={"runbook": "https://wiki/r/7"}))

    message = smtp_server.handler.received[0].message
    assert message["Subject"] == "Critical: Temperature 91.5 C above 80 C"
    assert message.get_content().splitlines() == ["Device sensor-12 at plant-north", "Runbook: https://wiki/r/7"]


def test_non_ascii_text_arrives_intact(smtp_server):
    config = email_config(smtp_server.port, template={"subject": "{{ message }}"})
    send(config, notification(message="Température 91,5 °C > 80 °C"))

    message = smtp_server.handler.received[0].message
    assert message["Subject"] == "Température 91,5 °C > 80 °C"
    assert "OPEN: Température 91,5 °C > 80 °C" in message.get_content().splitlines()


def test_subject_is_one_line_even_when_the_payload_has_line_breaks(smtp_server):
    config = email_config(smtp_server.port, template={"subject": "{{ message }}"})
    send(config, notification(message="first line\r\nBcc: intruder@example.com\nthird"))

    received = smtp_server.handler.received[0]
    assert received.message["Subject"] == "first line Bcc: intruder@example.com third"
    assert received.message["Bcc"] is None
    assert "intruder@example.com" not in received.rcpt_tos


def test_bcc_only_message_says_undisclosed_recipients(smtp_server):
    config = email_config(smtp_server.port, recipients={"bcc": ["audit@example.com"]})
    send(config)

    received = smtp_server.handler.received[0]
    assert received.rcpt_tos == ["audit@example.com"]
    assert received.message["To"] == "undisclosed-recipients:;"


def test_result_carries_the_final_reply_code_and_server_text(smtp_server):
    result = send(email_config(smtp_server.port))

    assert result.status_code == 250
    assert result.detail == "2.0.0 Ok: queued as PULSE42"


def test_a_recipient_refused_while_others_accept_is_delivered_and_reported(start_smtp_server):
    peer = start_smtp_server(RecordingHandler(refuse={"oncall@example.com": "550 5.1.1 No such user"}))

    result = send(email_config(peer.port))

    assert peer.handler.received[0].rcpt_tos == ["ops@example.com", "lead@example.com", "audit@example.com"]
    assert result.status_code == 250
    assert "oncall@example.com (550 5.1.1 No such user)" in result.detail


# TLS and login


def test_starttls_and_login_deliver_with_the_certificate_trusted_through_ca_file(starttls_server, certificate):
    smtp = {"security": "starttls", "username": USERNAME, "password": PASSWORD, "ca_file": str(certificate.cert_file)}

    result = send(email_config(starttls_server.port, smtp=smtp), context=trusting(certificate.cert_file.parent))

    assert result.status_code == 250
    [received] = starttls_server.handler.received
    assert received.login == USERNAME


def test_starttls_delivers_with_the_certificate_trusted_through_ca_pem(starttls_server, certificate):
    smtp = {"security": "starttls", "username": USERNAME, "password": PASSWORD, "ca_pem": certificate.cert_file.read_text()}

    result = send(email_config(starttls_server.port, smtp=smtp))

    assert result.status_code == 250
    assert starttls_server.handler.received[0].login == USERNAME


def test_implicit_tls_and_login_deliver(implicit_tls_server, certificate):
    smtp = {"security": "tls", "username": USERNAME, "password": PASSWORD, "ca_file": str(certificate.cert_file)}

    result = send(email_config(implicit_tls_server.port, smtp=smtp), context=trusting(certificate.cert_file.parent))

    assert result.status_code == 250
    assert implicit_tls_server.handler.received[0].login == USERNAME


@pytest.mark.parametrize("security, server", [("starttls", "starttls_server"), ("tls", "implicit_tls_server")])
def test_untrusted_certificate_is_permanent_and_names_the_remedy(security, server, request):
    peer = request.getfixturevalue(server)
    config = email_config(peer.port, smtp={"security": security, "username": USERNAME, "password": PASSWORD})

    with pytest.raises(PermanentError) as failure:
        send(config)

    assert "cannot be verified" in str(failure.value)
    assert "smtp.ca_file" in str(failure.value)
    assert PASSWORD not in str(failure.value)
    assert peer.handler.received == []


def test_verify_tls_false_accepts_an_untrusted_certificate(starttls_server):
    smtp = {"security": "starttls", "username": USERNAME, "password": PASSWORD, "verify_tls": False}

    send(email_config(starttls_server.port, smtp=smtp))

    assert len(starttls_server.handler.received) == 1


def test_wrong_password_is_permanent_and_never_quoted(starttls_server, certificate):
    wrong = "not-the-password-" + PASSWORD
    smtp = {"security": "starttls", "username": USERNAME, "password": wrong, "ca_file": str(certificate.cert_file)}

    with pytest.raises(PermanentError) as failure:
        send(email_config(starttls_server.port, smtp=smtp), context=trusting(certificate.cert_file.parent))

    assert failure.value.status_code == 535
    assert "535" in str(failure.value)
    assert wrong not in str(failure.value)
    assert starttls_server.handler.received == []


def test_starttls_required_but_not_offered_is_permanent(smtp_server):
    with pytest.raises(PermanentError) as failure:
        send(email_config(smtp_server.port, smtp={"security": "starttls"}))

    assert "does not offer STARTTLS" in str(failure.value)


def test_ca_file_that_cannot_be_read_is_permanent_and_named(starttls_server, tmp_path):
    missing = tmp_path / "missing-ca.pem"
    smtp = {"security": "starttls", "username": USERNAME, "password": PASSWORD, "ca_file": str(missing)}

    with pytest.raises(PermanentError) as failure:
        send(email_config(starttls_server.port, smtp=smtp), context=trusting(tmp_path))

    assert str(missing) in str(failure.value)


# Failures: SMTP replies and the network


@pytest.mark.parametrize(
    "stage, reply, error",
    [
        ("MAIL", "451 4.3.0 Mailbox busy", TransientError),
        ("MAIL", "553 5.7.1 Sender address rejected", PermanentError),
        ("RCPT", "451 4.7.1 Greylisted, try again later", TransientError),
        ("RCPT", "550 5.1.1 No such user", PermanentError),
        ("DATA", "452 4.3.1 Insufficient system storage", TransientError),
        ("DATA", "554 5.7.1 Message rejected as spam", PermanentError),
    ],
)
def test_smtp_4xx_is_transient_and_5xx_permanent_with_code_and_text(start_smtp_server, stage, reply, error):
    peer = start_smtp_server(RecordingHandler(replies={stage: reply}))

    with pytest.raises(error) as failure:
        send(email_config(peer.port))

    code, text = reply.split(" ", 1)
    assert type(failure.value) is error
    assert failure.value.status_code == int(code)
    assert code in str(failure.value) and text in str(failure.value)


def test_every_recipient_refused_with_any_4xx_is_transient(start_smtp_server):
    refuse = {
        "ops@example.com": "550 5.1.1 No such user",
        "oncall@example.com": "450 4.2.1 Mailbox temporarily unavailable",
        "lead@example.com": "550 5.1.1 No such user",
        "audit@example.com": "550 5.1.1 No such user",
    }
    peer = start_smtp_server(RecordingHandler(refuse=refuse))

    with pytest.raises(TransientError) as failure:
        send(email_config(peer.port))

    assert "oncall@example.com (450 4.2.1 Mailbox temporarily unavailable)" in str(failure.value)


@pytest.mark.parametrize(
    "greeting, error, status_code",
    [
        (b"421 4.3.2 Service not available, closing channel\r\n", TransientError, 421),
        (b"554 5.3.2 No SMTP service here\r\n", PermanentError, 554),
        (None, TransientError, None),
    ],
    ids=["greeting-421", "greeting-554", "closes-at-once"],
)
def test_server_greeting_decides_the_outcome(start_raw_peer, greeting, error, status_code):
    port = start_raw_peer(greeting)

    with pytest.raises(error) as failure:
        send(email_config(port))

    assert type(failure.value) is error
    assert failure.value.status_code == status_code


def test_connection_refused_is_transient():
    # A bound socket that does not listen refuses connections, and keeps the port from being reused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(TransientError) as failure:
            send(email_config(closed.getsockname()[1]))

    assert "refused the connection" in str(failure.value)


def test_silent_server_is_transient_after_the_timeout():
    # The kernel completes the handshake from the listen backlog; nobody ever speaks.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        context = SendContext(DeliverySettings(allow_private_destinations=True, timeout_seconds=0.3))
        with pytest.raises(TransientError) as failure:
            send(email_config(silent.getsockname()[1]), context=context)

    assert "did not answer within 0.3 s" in str(failure.value)


def test_implicit_tls_against_a_plain_smtp_port_is_permanent(smtp_server):
    with pytest.raises(PermanentError) as failure:
        send(email_config(smtp_server.port, smtp={"security": "tls"}))

    assert "smtp.security" in str(failure.value)


def test_join_that_would_produce_a_huge_text_is_permanent(smtp_server):
    separator = "x" * 10_000
    config = email_config(smtp_server.port, template={"body": "{{ details.tags|join('" + separator + "') }}"})

    with pytest.raises(PermanentError) as failure:
        send(config, notification(details={"tags": list(range(200))}))

    assert "join would produce more than" in str(failure.value)


def test_template_that_fails_for_this_alert_is_permanent_and_sends_nothing(smtp_server):
    config = email_config(smtp_server.port, template={"body": "Runbook: {{ details.runbook }}"})

    with pytest.raises(PermanentError) as failure:
        send(config, notification(details={}))

    assert "body template" in str(failure.value) and "runbook" in str(failure.value)
    assert smtp_server.handler.received == []


# Configuration


def valid_config() -> dict[str, Any]:
    return {
        "smtp": {"host": "smtp.example.com", "from": "pulse@example.com", "username": USERNAME, "password": PASSWORD},
        "recipients": {"to": ["ops@example.com"]},
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The valid config with one key (dotted path) set, or removed when value is REMOVE."""
    config = valid_config()
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is REMOVE:
        node.pop(last)
    else:
        node[last] = value
    return config


REMOVE = object()


@pytest.mark.parametrize(
    "path, value, location",
    [
        ("smtp.host", REMOVE, ("smtp", "host")),
        ("smtp.host", "mail server", ("smtp", "host")),
        ("smtp.port", 0, ("smtp", "port")),
        ("smtp.port", 70000, ("smtp", "port")),
        ("smtp.security", "ssl", ("smtp", "security")),
        ("smtp.from", REMOVE, ("smtp", "from")),
        ("smtp.from", "not an address", ("smtp", "from")),
        ("smtp.from", "Pulse <pulse@example.com>", ("smtp", "from")),
        ("smtp.from_address", "pulse@example.com", ("smtp", "from_address")),
        ("smtp.ca_file", "relative/ca.pem", ("smtp", "ca_file")),
        ("smtp.password", "pässword", ("smtp", "password")),
        ("smtp.username", REMOVE, ("smtp",)),
        ("smtp.security", "none", ("smtp",)),
        ("recipients.to", ["ops@example.com", "no-at-sign"], ("recipients", "to", 1)),
        ("recipients.cc", ["a@b.example\r\nBcc: x@y.example"], ("recipients", "cc", 0)),
        ("recipients.to", [], ("recipients",)),
        ("template.subject", "{{ severity_label }", ("template", "subject")),
        ("template.body", "{% for key in details %}{{ key }}", ("template", "body")),
        ("template.body", "{{ devcie_id }}", ("template", "body")),
        ("template.subject", "{{ 'x' * 100000000 }}", ("template", "subject")),
        ("template.body", "{{ message|center(100000000) }}", ("template", "body")),
        ("template.body", "{% for a in details %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}",
         ("template", "body")),
        ("template.body", "{{ details.get('runbook') }}", ("template", "body")),
        ("template.body", "{% include 'other' %}", ("template", "body")),
        ("webhook_url", "https://example.com", ("webhook_url",)),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(path, value, location):
    with pytest.raises(ValidationError) as failure:
        EmailConfig.model_validate(with_change(path, value))

    assert [error["loc"] for error in failure.value.errors()] == [location]


@pytest.mark.parametrize(
    "address, stored",
    [
        ("ops@example.com", "ops@example.com"),
        ("First.Last+pulse@Example.COM", "First.Last+pulse@example.com"),
        ("alerts@mail.corp.local", "alerts@mail.corp.local"),
        ("noc@bücher.example", "noc@xn--bcher-kva.example"),
    ],
)
def test_plain_addresses_are_accepted_with_the_domain_normalised(address, stored):
    config = EmailConfig.model_validate(with_change("recipients.to", [address]))

    assert config.recipients.to == [stored]


def test_config_defaults_follow_the_design():
    config = EmailConfig.model_validate(valid_config())

    smtp = config.smtp
    assert (smtp.port, smtp.security, smtp.verify_tls, smtp.ca_file) == (587, "starttls", True, None)
    assert config.recipients.cc == [] and config.recipients.bcc == []
    assert "{{ severity_label }}" in config.template.subject
    assert "{{ message }}" in config.template.body


def test_config_is_dumped_with_the_key_from_and_validates_again():
    config = EmailConfig.model_validate(valid_config())

    dumped = config.model_dump()

    assert dumped["smtp"]["from"] == "pulse@example.com"
    assert "from_address" not in dumped["smtp"]
    assert config.model_dump(by_alias=True) == dumped
    assert EmailConfig.model_validate(dumped) == config


def test_password_is_the_one_secret_field():
    assert SENDER.secret_fields == ("smtp.password",)
    assert SENDER.channel_type == "email"
