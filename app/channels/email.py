"""Email: one plain-text message per notification through the channel's SMTP server.

The subject and body are templates over the payload fields, in the bounded sandbox of
`app.templating`, with sensible defaults. Every message carries
`Message-ID: <pulse-<message id>@<domain of from>>`, the same on every attempt of a job, so a
mail client can drop repeats. Bcc recipients are in the envelope only. SMTP hosts usually live
on private networks, so the destination is not guarded (DESIGN §7). The SMTP dialogue itself,
bounded by the attempt's deadline, and what its failures mean live in `app.channels.smtp`.
"""

from __future__ import annotations

import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from app.channels.base import (
    ChannelConfig,
    Notification,
    SendContext,
    Sender,
    SendResult,
)
from app.channels.deadline import Deadline
from app.channels.errors import DeliveryError, PermanentError, redact
from app.channels.network import Host, dns_name
from app.channels.smtp import (
    SmtpClient,
    SmtpOverTls,
    classify_failure,
    close_quietly,
    ehlo_name,
    refusals,
    reply_text,
    timed_out,
)
from app.channels.trust import CaFile, CaPem, client_context
from app.config import DeliverySettings
from app.payload import PAYLOAD_FIELDS
from app.templating import RenderFailed, check_template, render

DEFAULT_SUBJECT = (
    "[{{ severity_label }}] {{ alert_type }} on {{ device_id }} "
    "({% if event_type == 'ESCALATED' %}escalated, step {{ escalation_step }}{% else %}{{ event_type|lower }}{% endif %})"
)

DEFAULT_BODY = """\
{% if event_type == "TEST" %}This is a test message from Pulse: the email channel works.

{% endif %}{% if event_type == "ESCALATED" %}ESCALATED (step {{ escalation_step }}){% else %}{{ event_type }}{% endif %}: {{ message }}

Severity:   {{ severity_label }} ({{ severity }})
Alert type: {{ alert_type }}
Device:     {{ device_id }}
Site:       {{ site_id }}
Tenant:     {{ tenant_id }}
Triggered:  {{ triggered_at }}
Alert id:   {{ alert_id }}
{% if details is mapping and details %}
Details:
{% for key, value in details|dictsort %}  {{ key }}: {{ value if value is string else value|json }}
{% endfor %}{% elif details %}
Details: {{ details|json }}
{% endif %}{% if ack_url %}
Acknowledge: {{ ack_url }}
{% endif %}"""

SUBJECT_TEMPLATE_MAX_LENGTH = 1_000
BODY_TEMPLATE_MAX_LENGTH = 20_000
MAX_RECIPIENTS = 100


# email-validator checks the local part: a dot-atom of at most 64 characters, ASCII (smtplib
# does not negotiate SMTPUTF8), never quoted, no display name. Its domain check refuses the
# special-use names SMTP relays on private networks live under, such as `.local`, whatever
# its options (`globally_deliverable=False` lifts only the dot and TLD rules; the special-use
# list is a process-wide global of the library), so the local part is checked against a
# stand-in domain and the domain is checked as the host name it is, by the one host check.
_STAND_IN_DOMAIN = "example.com"


def email_address(value: str) -> str:
    """A plain address `local@domain`, its domain lower-cased and in ASCII (IDNA) form."""
    local, at, domain = value.strip().rpartition("@")
    if not at:
        raise ValueError(f"{value!r} is not a plain email address (local@domain)")
    try:
        checked = validate_email(
            f"{local}@{_STAND_IN_DOMAIN}", allow_smtputf8=False, check_deliverability=False, strict=True
        )
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a plain email address (local@domain): {exc}") from None
    try:
        domain = dns_name(domain)
    except ValueError:
        raise ValueError(f"{value!r} has an invalid domain") from None
    return f"{checked.local_part}@{domain}"


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(email_address)]


def _checked_template(source: str) -> str:
    check_template(source, PAYLOAD_FIELDS)
    return source


class SmtpSettings(ChannelConfig):
    """How to reach and log in to the SMTP server. The key `from` is the sender address."""

    # Validated by the alias only: the stored and answered config must use the key `from`.
    model_config = ConfigDict(extra="forbid", validate_by_alias=True, validate_by_name=False, serialize_by_alias=True)

    host: Host
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    from_address: EmailAddress = Field(alias="from")
    verify_tls: bool = True
    ca_pem: CaPem | None = None
    ca_file: CaFile | None = None

    @field_validator("security", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator("username", "password")
    @classmethod
    def _ascii(cls, value: str | None) -> str | None:
        # Python's smtplib encodes the login as ASCII; anything else fails at every send.
        if value is not None and not value.isascii():
            raise ValueError("must be ASCII text")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        if self.username is not None and self.password is None:
            raise ValueError("username is set but password is not")
        if self.security == "none" and self.username is not None:
            raise ValueError(
                "username and password need security starttls or tls: with none they cross the network in clear text"
            )
        for name in ("ca_pem", "ca_file"):
            if self.security == "none" and getattr(self, name) is not None:
                raise ValueError(f"{name} applies only to security starttls or tls")
        if self.ca_pem is not None and self.ca_file is not None:
            raise ValueError("set ca_pem or ca_file, not both")
        return self


class Recipients(ChannelConfig):
    """Who gets the message; bcc addresses are in the envelope, never in a header."""

    to: list[EmailAddress] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[EmailAddress] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[EmailAddress] = Field(default_factory=list, max_length=MAX_RECIPIENTS)

    @model_validator(mode="after")
    def _at_least_one(self) -> Recipients:
        if not (self.to or self.cc or self.bcc):
            raise ValueError("at least one recipient is needed in to, cc or bcc")
        if len(self.envelope()) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in all")
        return self

    def envelope(self) -> list[str]:
        """Every distinct recipient, in order: to, cc, then bcc."""
        seen: dict[str, str] = {}
        for address in [*self.to, *self.cc, *self.bcc]:
            seen.setdefault(address.lower(), address)
        return list(seen.values())


SubjectTemplate = Annotated[
    str, Field(min_length=1, max_length=SUBJECT_TEMPLATE_MAX_LENGTH), AfterValidator(_checked_template)
]
BodyTemplate = Annotated[
    str, Field(min_length=1, max_length=BODY_TEMPLATE_MAX_LENGTH), AfterValidator(_checked_template)
]


class EmailTemplate(ChannelConfig):
    """Jinja2 templates of the subject (one line) and the plain-text body."""

    subject: SubjectTemplate = DEFAULT_SUBJECT
    body: BodyTemplate = DEFAULT_BODY


class EmailConfig(ChannelConfig):
    smtp: SmtpSettings
    recipients: Recipients
    template: EmailTemplate = Field(default_factory=EmailTemplate)


def message_id(notification: Notification, from_address: str) -> str:
    """`<pulse-<id>@<domain>>`: the same for every attempt of a job, unique per sender domain."""
    local = re.sub(r"[^A-Za-z0-9._-]", "-", notification.message_id)
    domain = from_address.rsplit("@", 1)[1]
    return f"<pulse-{local}@{domain}>"


def build_message(config: EmailConfig, notification: Notification) -> EmailMessage:
    """The message as sent: headers name to and cc only; bcc is added to the envelope."""
    payload = notification.payload
    subject = " ".join(_render(config.template.subject, payload, "subject").split())
    body = _render(config.template.body, payload, "body")
    message = EmailMessage()
    message["From"] = config.smtp.from_address
    if config.recipients.to:
        message["To"] = ", ".join(config.recipients.to)
    if config.recipients.cc:
        message["Cc"] = ", ".join(config.recipients.cc)
    if not config.recipients.to and not config.recipients.cc:
        # A message without To is scored as spam by common filters; RFC 5322 §A.1.3 shows this form.
        message["To"] = "undisclosed-recipients:;"
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(notification, config.smtp.from_address)
    # RFC 3834: automatic replies (out of office) must not answer an auto-generated message.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Pulse-Alert-Id"] = " ".join(str(payload.get("alert_id", "")).split())
    message["X-Pulse-Event"] = " ".join(str(notification.event_type).split())
    message.set_content(body if body.endswith("\n") else body + "\n")
    return message


def _render(source: str, payload: dict[str, Any], what: str) -> str:
    """A template rendered over the payload; PermanentError names which template failed and why."""
    try:
        return render(source, {name: payload.get(name) for name in PAYLOAD_FIELDS})
    except RenderFailed as exc:
        raise PermanentError(f"the {what} template {exc}") from None


def tls_context(smtp: SmtpSettings, settings: DeliverySettings) -> ssl.SSLContext:
    """The client TLS context: the system's CAs, or only the channel's own, or no verification."""
    return client_context(settings, verify=smtp.verify_tls, ca_pem=smtp.ca_pem, ca_file=smtp.ca_file, field_prefix="smtp.")


class EmailSender(Sender):
    """Send the rendered message through the channel's SMTP server, one connection per attempt."""

    channel_type = "email"
    config_model = EmailConfig
    secret_fields = ("smtp.password",)

    def send(self, config: EmailConfig, notification: Notification, context: SendContext) -> SendResult:
        message = build_message(config, notification)
        smtp = config.smtp
        where = f"SMTP server {smtp.host}:{smtp.port}"
        tls = tls_context(smtp, context.settings) if smtp.security != "none" else None
        with Deadline(context.timeout) as deadline:
            return self._dialogue(config, message, tls, deadline, where)

    @staticmethod
    def _dialogue(config: EmailConfig, message: EmailMessage, tls: ssl.SSLContext | None, deadline: Deadline, where: str):
        """The SMTP dialogue of one attempt, from connection to QUIT, within the deadline."""
        smtp = config.smtp
        client: SmtpClient | None = None
        try:
            options = {"local_hostname": ehlo_name(deadline), "timeout": deadline.remaining()}
            if smtp.security == "tls":
                client = SmtpOverTls(smtp.host, smtp.port, deadline, context=tls, **options)
            else:
                client = SmtpClient(smtp.host, smtp.port, deadline, **options)
            if smtp.security == "starttls":
                client.ehlo_or_helo_if_needed()
                if not client.has_extn("starttls"):
                    raise PermanentError(
                        f"{where} does not offer STARTTLS; set smtp.security to tls (implicit TLS) or none"
                    )
                client.starttls(context=tls)
            if smtp.username is not None:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(
                message, from_addr=smtp.from_address, to_addrs=config.recipients.envelope()
            )
            code, text = client.data_reply or (250, b"")
        except DeliveryError as error:
            raise error.redacted([smtp.password]) from None
        except Exception as exc:
            error = timed_out(where, deadline) if deadline.fired else classify_failure(exc, where, deadline.seconds)
            if error is None:
                raise
            # A server may echo what it was sent: the password never leaves in an error.
            raise error.redacted([smtp.password]) from None
        finally:
            if client is not None:
                close_quietly(client)
        detail = reply_text(text)
        if refused:
            # The message was accepted for the other recipients: a retry would send it to them again.
            detail = f"{detail}; refused {refusals(refused)}"
        return SendResult(status_code=code, detail=redact(detail, [smtp.password]) or None)
