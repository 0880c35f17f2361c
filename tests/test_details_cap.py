"""An alert's `details` is at most 64 KiB of serialized JSON (DESIGN §6): beyond, 422 and nothing is stored."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from app.models import Alert, Device
from app.schemas import MAX_DETAILS_BYTES
from tests.support import post_alert


def details_of_size(size: int) -> dict:
    """A `details` object whose compact JSON is exactly `size` bytes."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    details = {"blob": "x" * (size - overhead)}
    assert len(json.dumps(details, separators=(",", ":")).encode()) == size
    return details


def stored(db, tenant_id: str) -> tuple[int, int]:
    with db.session(tenant_id) as session:
        return (
            session.scalar(select(func.count()).select_from(Alert).where(Alert.tenant_id == tenant_id)),
            session.scalar(select(func.count()).select_from(Device).where(Device.tenant_id == tenant_id)),
        )


def test_details_of_exactly_64_kib_are_accepted_and_kept_as_posted(client, tenant):
    details = details_of_size(MAX_DETAILS_BYTES)
    alert = post_alert(client, tenant, details=details)
    read = client.get(f"/api/v2/alerts/{alert['alert_id']}", headers=tenant.admin).get_json()
    assert read["details"] == details


def test_details_one_byte_over_64_kib_are_422_naming_the_field(client, db, tenant):
    body = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot", "details": details_of_size(MAX_DETAILS_BYTES + 1)}
    response = client.post("/api/v2/alerts", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert [error["field"] for error in problem["errors"]] == ["details"]
    assert "64 KiB" in problem["errors"][0]["message"]
    assert stored(db, tenant.tenant_id) == (0, 0)


def test_the_cap_counts_utf8_bytes_not_characters(client, db, tenant):
    # 40,000 characters of three bytes each: well under 64 Ki characters, over 64 KiB.
    body = {"device_id": "pump-1", "alert_type": "overheat", "severity": 4, "message": "hot", "details": {"note": "€" * 40_000}}
    response = client.post("/api/v2/alerts", json=body, headers=tenant.admin)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "details"
    assert stored(db, tenant.tenant_id) == (0, 0)
