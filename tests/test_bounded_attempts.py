"""No receiver and no channel setting can hold a delivery attempt beyond its bound (DESIGN §5a).

Trust anchors: a channel's CAs are PEM text (`ca_pem`) or a regular PEM file inside
TRUSTED_CA_DIR (`ca_file`); anything else is refused when the channel is saved, and a file
that turned into something else since is refused at send time, at once: a FIFO or a
`/proc` path never blocks a worker thread or the web process inside OpenSSL.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from app import create_app
from tests.support import create_channel, create_rule, make_tenant, post_alert, settled, wait_for
from tests.tls import make_self_signed_certificate
from tests.webserver import WebServer

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
