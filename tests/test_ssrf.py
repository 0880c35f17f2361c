"""HTTP channels never reach an address the SSRF policy refuses, however it is spelt (DESIGN §7).

Three layers, each table-driven:

* the policy itself: which addresses are refused, with and without ALLOW_PRIVATE_DESTINATIONS,
  over the forms that carry an IPv4 address inside an IPv6 one (mapped, 6to4, NAT64);
* delivery: every spelling of loopback and of the metadata address, sent through the real
  webhook sender, is refused before a single byte reaches the real receiver listening there;
* channel creation: a URL whose host is such a literal is a 422.

DNS names are refused by the addresses they resolve to: the sender checks every address the
resolver returns and connects only to one it checked, so the address table covers whatever a
name may resolve to. A test cannot own this machine's DNS, so the resolver path is exercised
with the names the machine resolves itself (`localhost`, in any case), and redirects, which
could lead anywhere, are never followed.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from app import create_app
from app.channels.base import SendContext
from app.channels.destinations import refusal_reason
from app.channels.errors import DeliveryError, PermanentError
from app.channels.webhook import WebhookConfig, WebhookSender
from app.config import DeliverySettings
from tests.support import make_tenant, sample_notification

# address, reason when private destinations are refused, reason when they are allowed
ADDRESSES = [
    ("127.0.0.1", "loopback", None),
    ("127.255.0.9", "loopback", None),
    ("10.1.2.3", "RFC 1918", None),
    ("172.16.0.1", "RFC 1918", None),
    ("192.168.1.1", "RFC 1918", None),
    ("100.64.0.1", "CGNAT", None),
    ("169.254.1.1", "link-local", None),
    ("0.0.0.0", "unspecified", None),
    ("224.0.0.1", "multicast", None),
    ("240.0.0.1", "reserved", None),
    ("::1", "loopback", None),
    ("fe80::1", "link-local", None),
    ("fd12:3456::1", "unique local", None),
    ("::ffff:127.0.0.1", "loopback address in its IPv4-mapped form", None),
    ("::ffff:10.0.0.1", "RFC 1918) in its IPv4-mapped form", None),
    ("2002:7f00:1::1", "loopback address in its 6to4 form", None),
    ("2002:c0a8:101::1", "RFC 1918) in its 6to4 form", None),
    ("64:ff9b::7f00:1", "loopback address in its NAT64 form", None),
    ("64:ff9b::10.0.0.1", "RFC 1918) in its NAT64 form", None),
    ("169.254.169.254", "metadata", "metadata"),
    ("fd00:ec2::254", "metadata", "metadata"),
    ("169.254.170.2", "metadata", "metadata"),
    ("::ffff:169.254.169.254", "metadata address in its IPv4-mapped form", "metadata address in its IPv4-mapped form"),
    ("2002:a9fe:a9fe::1", "metadata address in its 6to4 form", "metadata address in its 6to4 form"),
    ("64:ff9b::a9fe:a9fe", "metadata address in its NAT64 form", "metadata address in its NAT64 form"),
    ("8.8.8.8", None, None),
    ("2606:4700:4700::1111", None, None),
    ("2002:808:808::1", None, None),
    ("64:ff9b::8.8.8.8", None, None),
]


@pytest.mark.parametrize("address, refused, refused_when_private_allowed", ADDRESSES, ids=[row[0] for row in ADDRESSES])
def test_the_policy_refuses_each_address_for_what_it_is(address, refused, refused_when_private_allowed):
    for allow_private, expected in ((False, refused), (True, refused_when_private_allowed)):
        reason = refusal_reason(address, allow_private=allow_private)
        if expected is None:
            assert reason is None, f"{address} (allow_private={allow_private}) refused: {reason}"
        else:
            assert reason is not None and expected in reason, f"{address} (allow_private={allow_private}): {reason}"


def loopback_spellings(port: int) -> dict[str, str]:
    """URLs that all lead to 127.0.0.1:port, as the C library reads them."""
    return {
        "dotted": f"http://127.0.0.1:{port}/hook",
        "decimal": f"http://2130706433:{port}/hook",
        "octal": f"http://0177.0.0.1:{port}/hook",
        "octal, one part": f"http://017700000001:{port}/hook",
        "hex parts": f"http://0x7f.0.0.1:{port}/hook",
        "hex": f"http://0x7f000001:{port}/hook",
        "short": f"http://127.1:{port}/hook",
        "leading zeros": f"http://127.0.0.01:{port}/hook",
        "trailing dot": f"http://127.0.0.1.:{port}/hook",
        "IPv4-mapped": f"http://[::ffff:127.0.0.1]:{port}/hook",
        "IPv4-mapped, hex": f"http://[::ffff:7f00:1]:{port}/hook",
        "6to4": f"http://[2002:7f00:1::1]:{port}/hook",
        "NAT64": f"http://[64:ff9b::7f00:1]:{port}/hook",
        "IPv6 loopback": f"http://[::1]:{port}/hook",
        "the name localhost": f"http://localhost:{port}/hook",
        "the name in capitals": f"http://LOCALHOST:{port}/hook",
    }


METADATA_SPELLINGS = {
    "dotted": "http://169.254.169.254/latest/meta-data/",
    "decimal": "http://2852039166/latest/meta-data/",
    "hex": "http://0xa9fea9fe/latest/meta-data/",
    "IPv4-mapped": "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "6to4": "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
    "NAT64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "AWS over IPv6": "http://[fd00:ec2::254]/latest/meta-data/",
}


def send(url: str, allow_private: bool):
    """One webhook delivery to `url`, whose config is taken as stored, unchecked: the sender's
    own guard is what is on trial, not the check at channel creation."""
    settings = DeliverySettings(allow_private_destinations=allow_private, timeout_seconds=2)
    config = WebhookConfig.model_construct(url=url, method="POST", headers={}, secret=None)
    return WebhookSender().send(config, sample_notification(), SendContext(settings))


@pytest.mark.parametrize("spelling", list(loopback_spellings(1)), ids=list(loopback_spellings(1)))
def test_every_spelling_of_loopback_is_refused_before_anything_is_sent(receiver, spelling):
    url = loopback_spellings(receiver.port)[spelling]

    with pytest.raises(PermanentError) as refused:
        send(url, allow_private=False)

    assert "refused" in str(refused.value) and "loopback" in str(refused.value)
    assert receiver.requests == []


def test_the_same_receiver_is_reached_when_private_destinations_are_allowed(receiver):
    send(loopback_spellings(receiver.port)["decimal"], allow_private=True)

    assert len(receiver.requests) == 1


@pytest.mark.parametrize("url", METADATA_SPELLINGS.values(), ids=METADATA_SPELLINGS.keys())
def test_every_spelling_of_the_metadata_address_is_refused_even_with_private_destinations_allowed(url):
    for allow_private in (False, True):
        with pytest.raises(PermanentError) as refused:
            send(url, allow_private=allow_private)

        assert "metadata" in str(refused.value)


def test_a_name_with_a_trailing_dot_never_reaches_loopback(receiver):
    # "localhost." is the absolute form of "localhost": refused if this machine resolves it,
    # unresolvable otherwise; delivered never.
    with pytest.raises(DeliveryError) as failed:
        send(f"http://localhost.:{receiver.port}/hook", allow_private=False)

    assert "loopback" in str(failed.value) or "cannot resolve" in str(failed.value)
    assert receiver.requests == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/admin"])
def test_a_redirect_is_never_followed(receiver, target):
    receiver.default = (302, {"Location": target}, b"")

    with pytest.raises(PermanentError) as failed:
        send(receiver.url(), allow_private=True)

    assert "redirect, not followed" in str(failed.value)
    assert len(receiver.requests) == 1


@pytest.fixture(scope="module")
def strict_client(app):
    """The API of a process with ALLOW_PRIVATE_DESTINATIONS=0."""
    settings = app.extensions["pulse"].settings
    strict = create_app(replace(settings, delivery=replace(settings.delivery, allow_private_destinations=False)))
    yield strict.test_client()
    strict.extensions["pulse"].db.dispose()


@pytest.fixture(scope="module")
def creator(app):
    """One tenant for the creations that are all refused: nothing of theirs is ever stored."""
    return make_tenant(app)


CHANNEL_URLS = [("webhook", "url"), ("slack", "webhook_url"), ("teams", "webhook_url")]


@pytest.mark.parametrize("channel_type, key", CHANNEL_URLS)
@pytest.mark.parametrize("spelling", [s for s in loopback_spellings(1) if "name" not in s])
def test_a_literal_loopback_url_is_422_at_creation(strict_client, creator, channel_type, key, spelling):
    url = loopback_spellings(8080)[spelling]

    response = strict_client.post(
        "/api/v2/channels", json={"name": "n", "channel_type": channel_type, "config": {key: url}}, headers=creator.admin
    )

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"][0]["field"] == f"config.{key}"
    assert "loopback" in response.get_json()["detail"]


@pytest.mark.parametrize("channel_type, key", CHANNEL_URLS)
@pytest.mark.parametrize("url", METADATA_SPELLINGS.values(), ids=METADATA_SPELLINGS.keys())
def test_a_metadata_url_is_422_at_creation_even_with_private_destinations_allowed(client, creator, channel_type, key, url):
    response = client.post(
        "/api/v2/channels", json={"name": "n", "channel_type": channel_type, "config": {key: url}}, headers=creator.admin
    )

    assert response.status_code == 422, response.get_json()
    assert "metadata" in response.get_json()["detail"]


def test_a_host_name_is_accepted_at_creation_and_judged_at_delivery(strict_client, tenant):
    response = strict_client.post(
        "/api/v2/channels",
        json={"name": "n", "channel_type": "webhook", "config": {"url": "http://localhost:9/hook"}},
        headers=tenant.admin,
    )

    assert response.status_code == 201
    test = strict_client.post(f"/api/v2/channels/{response.get_json()['channel_id']}/test", headers=tenant.admin)
    assert test.status_code == 502 and "loopback" in test.get_json()["detail"]
