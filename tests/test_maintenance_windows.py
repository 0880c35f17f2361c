"""Maintenance windows (DESIGN §6a): RRULE occurrences in an IANA zone, DST, and their end.

The recurrence arithmetic is table-tested through `app.silences.window_at(silence, now)`,
which takes the clock as a parameter; the end of a live occurrence is tested end to end with
a window a few seconds long, real worker and beat processes and a real receiver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.silences import holds, window_at
from tests.support import PrivateStack, create_channel, create_rule, deliveries, post_alert, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@dataclass
class Window:
    """The attributes of a silence row that the time functions read."""

    starts_at: datetime
    ends_at: datetime | None
    recurrence: dict[str, Any] | None


def sundays_at_two(zone: str = "Europe/Berlin", ends_at: datetime | None = None) -> Window:
    # First occurrence Sunday 2026-03-01 02:00 Berlin time (CET, UTC+1).
    return Window(
        starts_at=datetime(2026, 3, 1, 2, 0, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc),
        ends_at=ends_at,
        recurrence={"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", "duration_seconds": 3600, "timezone": zone},
    )


def local(year, month, day, hour, minute=0, zone=BERLIN) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(timezone.utc)


@pytest.mark.parametrize(
    "now, expected",
    [
        (local(2026, 3, 1, 1, 59), False),
        (local(2026, 3, 1, 2, 0), True),
        (local(2026, 3, 1, 2, 59), True),
        (local(2026, 3, 1, 3, 0), False),
        (local(2026, 3, 4, 2, 30), False),  # a Wednesday
        (local(2026, 3, 8, 2, 30), True),
        # Summer time from 2026-03-29 (02:00 CET -> 03:00 CEST): 02:00 does not exist that
        # Sunday; RFC 5545 takes such a time with the offset before the gap, i.e. 03:00 CEST
        # (01:00 UTC), and the occurrence lasts its hour.
        (datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc), True),
        # The week after, 02:00 is CEST (UTC+2): 00:00 UTC, no longer 01:00 UTC.
        (datetime(2026, 4, 5, 0, 30, tzinfo=timezone.utc), True),
        (datetime(2026, 4, 5, 1, 30, tzinfo=timezone.utc), False),
        (local(2026, 4, 5, 2, 30), True),
        # Back to winter time on 2026-10-25: 02:00 local is 01:00 UTC again.
        (datetime(2026, 11, 1, 1, 30, tzinfo=timezone.utc), True),
        (datetime(2026, 11, 1, 0, 30, tzinfo=timezone.utc), False),
    ],
)
def test_a_weekly_window_keeps_its_local_time_across_daylight_saving_changes(now, expected):
    assert holds(sundays_at_two(), now) is expected


def test_an_occurrence_is_an_absolute_duration_even_on_the_night_the_clocks_go_back():
    # New York falls back on 2026-11-01 at 02:00 EDT -> 01:00 EST: an occurrence starting at
    # 01:00 (the first, EDT) and lasting two hours ends at 02:00 EST, three local hours later.
    window = Window(
        starts_at=local(2026, 10, 25, 1, zone=NEW_YORK),
        ends_at=None,
        recurrence={"rrule": "FREQ=WEEKLY;BYDAY=SU", "duration_seconds": 7200, "timezone": "America/New_York"},
    )
    found = window_at(window, datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc))
    assert found is not None
    assert found.starts_at == datetime(2026, 11, 1, 5, 0, tzinfo=timezone.utc)
    assert found.ends_at == datetime(2026, 11, 1, 7, 0, tzinfo=timezone.utc)
    assert not holds(window, datetime(2026, 11, 1, 7, 0, tzinfo=timezone.utc))


def test_ends_at_ends_the_series_and_cuts_an_occurrence_short():
    window = sundays_at_two(ends_at=local(2026, 3, 8, 2, 30))
    assert holds(window, local(2026, 3, 8, 2, 10))
    assert not holds(window, local(2026, 3, 8, 2, 40))
    assert not holds(window, local(2026, 3, 15, 2, 10))


def test_a_count_limits_the_occurrences():
    window = sundays_at_two()
    window.recurrence = {**window.recurrence, "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0;COUNT=2"}
    assert holds(window, local(2026, 3, 8, 2, 10))
    assert not holds(window, local(2026, 3, 15, 2, 10))


# Through the API ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(app):
    stack = PrivateStack(9)
    stack.worker()
    stack.beat()
    yield stack
    stack.close()


def window_body(**changes) -> dict:
    return {
        "name": "Sunday maintenance",
        "starts_at": "2026-11-01T02:00:00+01:00",
        "recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0", "duration_seconds": 3600, "timezone": "Europe/Berlin"},
        **changes,
    }


def test_a_window_needs_no_end_and_is_read_back_as_created(stack):
    tenant = stack.tenant()
    response = stack.client.post("/api/v2/silences", json=window_body(), headers=tenant.admin)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["ends_at"] is None
    assert created["recurrence"] == window_body()["recurrence"]
    assert created["starts_at"] == "2026-11-01T01:00:00+00:00"


def test_a_window_anchored_more_than_a_year_ago_is_422(stack):
    tenant = stack.tenant()
    old = (datetime.now(timezone.utc) - timedelta(days=400)).isoformat()
    response = stack.client.post("/api/v2/silences", json=window_body(starts_at=old), headers=tenant.admin)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "starts_at"


def test_a_window_of_another_tenant_is_404_and_viewers_cannot_create_one(stack):
    tenant, other = stack.tenant(), stack.tenant()
    theirs = stack.client.post("/api/v2/silences", json=window_body(), headers=other.admin).get_json()
    assert stack.client.get(f"/api/v2/silences/{theirs['silence_id']}", headers=tenant.admin).status_code == 404
    assert stack.client.post("/api/v2/silences", json=window_body(), headers=tenant.viewer).status_code == 403
    assert stack.client.get("/api/v2/silences", headers=tenant.admin).get_json()["items"] == []


def test_a_patch_that_breaks_the_recurrence_is_422_and_changes_nothing(stack):
    tenant = stack.tenant()
    created = stack.client.post("/api/v2/silences", json=window_body(), headers=tenant.admin).get_json()
    broken = {"rrule": "FREQ=WEEKLY;BYDAY=XX", "duration_seconds": 60, "timezone": "Europe/Berlin"}
    response = stack.client.patch(f"/api/v2/silences/{created['silence_id']}", json={"recurrence": broken}, headers=tenant.admin)
    assert response.status_code == 422
    assert stack.client.get(f"/api/v2/silences/{created['silence_id']}", headers=tenant.admin).get_json() == created


def test_when_an_occurrence_closes_the_alerts_it_held_that_are_still_open_are_sent(stack, receiver):
    tenant = stack.tenant()
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    started = (datetime.now(timezone.utc) - timedelta(seconds=1)).replace(microsecond=0)
    # A daily window whose today's occurrence began a second ago and lasts four seconds.
    body = window_body(
        starts_at=started.isoformat(),
        recurrence={"rrule": "FREQ=DAILY", "duration_seconds": 4, "timezone": "Europe/Berlin"},
    )
    window = stack.client.post("/api/v2/silences", json=body, headers=tenant.admin).get_json()
    assert window["active"] is True
    alert = post_alert(stack.client, tenant)
    assert alert["jobs_queued"] == 0
    assert [job["status"] for job in deliveries(stack.client, tenant)] == ["SUPPRESSED"]
    [sent] = wait_for(lambda: receiver.at(), timeout=15, message="the OPEN released when the occurrence closed")
    assert sent.json()["alert_id"] == alert["alert_id"]
    # Not before the occurrence closed.
    assert sent.at >= (started + timedelta(seconds=4)).timestamp()
    later = stack.client.get(f"/api/v2/silences/{window['silence_id']}", headers=tenant.admin).get_json()
    assert later["active"] is False
    time.sleep(1)
    assert len(receiver.at()) == 1
