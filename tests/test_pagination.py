"""One keyset paginator for every list (DESIGN §6): newest first, `limit` and `cursor` everywhere."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import create_channel, create_rule, post_alert


def cursor_of(key: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def walk(client, tenant, path: str, key: str, limit: int = 2, **filters) -> list:
    """Every item's `key` in the order the list pages them."""
    seen, cursor = [], None
    while True:
        query = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query_string=query, headers=tenant.admin)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert len(page["items"]) <= limit
        seen += [item[key] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


@pytest.fixture
def five_of_each(client, tenant):
    """Five channels, five rules (one per channel) and five alerts: five jobs per alert."""
    channels = [create_channel(client, tenant, "webhook", {"url": f"http://127.0.0.1:9/hook-{n}"}) for n in range(5)]
    for channel in channels:
        create_rule(client, tenant, channel["channel_id"])
    for number in range(5):
        post_alert(client, tenant, device_id=f"dev-{number}")


@pytest.mark.parametrize(
    "path, key, count",
    [("/api/v2/channels", "channel_id", 5), ("/api/v2/routing-rules", "rule_id", 5), ("/api/v2/deliveries", "job_id", 25), ("/api/v2/alerts", "alert_id", 5)],
)
def test_every_list_pages_through_everything_newest_first(client, tenant, five_of_each, path, key, count):
    seen = walk(client, tenant, path, key)
    assert len(seen) == count and seen == sorted(set(seen), reverse=True)


def test_a_filtered_list_pages_within_its_filter(client, tenant, five_of_each):
    [alert] = client.get("/api/v2/alerts", query_string={"device_id": "dev-2"}, headers=tenant.admin).get_json()["items"]
    seen = walk(client, tenant, "/api/v2/deliveries", "job_id", alert_id=alert["alert_id"])
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)


def test_a_cursor_of_one_list_is_not_one_of_a_list_with_another_key(client, tenant, five_of_each):
    for number in range(3):
        client.post("/api/v2/devices/dev-0/telemetry", json={"timestamp": f"2026-01-01T00:00:0{number}Z", "metrics": {"v": number}}, headers=tenant.admin)
    cursors = {
        path: client.get(path, query_string={"limit": 1}, headers=tenant.admin).get_json()["next_cursor"]
        for path in ("/api/v2/alerts", "/api/v2/devices", "/api/v2/devices/dev-0/telemetry")
    }
    assert all(cursors.values()), cursors
    for issued_by, cursor in cursors.items():
        for path in cursors:
            status = client.get(path, query_string={"cursor": cursor}, headers=tenant.admin).status_code
            assert status == (200 if path == issued_by else 422), (issued_by, path)


@pytest.mark.parametrize(
    "path, key",
    [("/api/v2/devices", ["2026-01-01T00:00:00+00:00", "dev\u0000"]), ("/api/v2/alerts", [True]), ("/api/v2/alerts", [1, 2]), ("/api/v2/devices/dev-0/telemetry", ["yesterday"])],
)
def test_a_cursor_this_api_did_not_issue_is_422(client, tenant, five_of_each, path, key):
    response = client.get(path, query_string={"cursor": cursor_of(key)}, headers=tenant.admin)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [{"field": "cursor", "message": "invalid"}]


@pytest.mark.parametrize("path", ["/api/v2/alerts/%C2%B9", "/api/v2/deliveries/%D9%A3", "/api/v2/channels/%C2%B2/test"])
def test_an_id_of_digits_other_than_ascii_is_404(client, tenant, path):
    response = client.get(path, headers=tenant.admin) if "test" not in path else client.post(path, headers=tenant.admin)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
