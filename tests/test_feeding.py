"""Feeding a tenant's share of its queue at half depth (app.delivery.jobs.Share), on the real PostgreSQL.

A claim and an outcome each count the tenant's messages waiting in the job's queue, and
whether jobs wait without one; the worker tops the share up only once it is down to half
its depth, so a backlog is fed half a share at a time instead of one job per delivery.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app.delivery.jobs import Share, claim, record_outcome
from app.models import NotificationJob
from app.status import JobStatus
from tests.delivery_support import outcome, settings
from tests.support import create_channel, create_rule, make_tenant, post_alert

DEPTH = 8
POLICY = settings(tenant_queue_depth=DEPTH)


@pytest.fixture
def backlog(quiet):
    """12 jobs of one tenant: the first 10 with a message out, the last 2 waiting without one."""
    client = quiet.test_client()
    tenant = make_tenant(quiet)
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    create_rule(client, tenant, channel["channel_id"])
    for number in range(12):
        post_alert(client, tenant, device_id=f"pump-{number}")
    rows = client.get("/api/v2/deliveries?limit=50", headers=tenant.admin).get_json()["items"]
    job_ids = sorted(row["job_id"] for row in rows)
    db = quiet.extensions["pulse"].db
    # The quiet app's broker is down, so no job has a message yet: give the first 10 one.
    with db.system_scope("tests") as session:
        session.execute(update(NotificationJob).where(NotificationJob.job_id.in_(job_ids[:10])).values(enqueued_at=NotificationJob.created_at))
    yield db, job_ids
    # Claimed jobs no worker will report on: settled, so no later test's sweep finds their leases.
    with db.system_scope("tests") as session:
        session.execute(update(NotificationJob).where(NotificationJob.job_id.in_(job_ids)).values(status=JobStatus.FAILED, enqueued_at=None))


@pytest.mark.parametrize(
    ("queued", "waiting", "depth", "feeds"),
    [
        (7, True, 8, False),
        (5, True, 8, False),
        (4, True, 8, True),
        (0, True, 8, True),
        (0, False, 8, False),  # nothing waits unsent: nothing to feed
        (0, True, 1, True),  # a share of one is fed after every message
        (31, True, 32, False),
        (16, True, 32, True),
    ],
)
def test_a_share_is_fed_once_down_to_half(queued, waiting, depth, feeds):
    assert Share(queued, waiting).needs_feeding(settings(tenant_queue_depth=depth)) is feeds


def test_the_claim_counts_the_other_messages_waiting(backlog):
    db, job_ids = backlog
    shares = []
    for job_id in job_ids[:6]:
        with db.system_work("tests") as work:
            shares.append(claim(work, job_id, POLICY).share)
    # Each claim leaves its own message out of the count; 2 jobs wait without one throughout.
    assert [share.queued for share in shares] == [9, 8, 7, 6, 5, 4]
    assert all(share.backlog for share in shares)
    assert [share.needs_feeding(POLICY) for share in shares] == [False] * 5 + [True]


def test_the_outcome_counts_them_too_in_one_statement_or_several(backlog):
    db, job_ids = backlog
    claims = []
    for job_id in job_ids[:3]:
        with db.system_work("tests") as work:
            claims.append(claim(work, job_id, POLICY))
    # A Work writes the outcome in one statement; a session (the sweeper's) in several.
    with db.work(claims[0].tenant_id) as work:
        on_the_driver = record_outcome(work, outcome(claims[0], True))
    with db.session(claims[1].tenant_id) as session:
        in_a_session = record_outcome(session, outcome(claims[1], True))
    assert on_the_driver.share == in_a_session.share == Share(7, True)


def test_nothing_waiting_unsent_is_nothing_to_feed(backlog):
    db, job_ids = backlog
    for job_id in job_ids[10:]:
        with db.system_work("tests") as work:
            claim(work, job_id, POLICY)
    with db.system_work("tests") as work:
        share = claim(work, job_ids[0], POLICY).share
    assert share == Share(9, False)
    assert not share.needs_feeding(POLICY)
