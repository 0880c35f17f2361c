"""Fencing: only the attempt that holds a job's claim decides its outcome (DESIGN §5a).

Plain functions against the real PostgreSQL: claim, let the lease expire (its time is moved
into the past), claim again, then let the first attempt report late.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.delivery.jobs import claim, record_outcome
from app.delivery.outbox import OutcomeOutbox
from app.delivery.policy import claim_lease
from app.delivery.sweep import SweepReport, expire_leases
from app.status import JobStatus
from tests.delivery_support import age, job, log_rows, outcome, settings
from tests.support import create_channel, create_rule, make_tenant, post_alert

POLICY = settings(max_attempts=3)


@pytest.fixture
def db(quiet):
    return quiet.extensions["pulse"].db


@pytest.fixture
def outbox(quiet):
    return OutcomeOutbox(quiet.extensions["pulse"].redis)


@pytest.fixture
def job_id(quiet):
    """A PENDING job that no worker will ever see."""
    client = quiet.test_client()
    tenant = make_tenant(quiet)
    channel = create_channel(client, tenant, "webhook", {"url": "http://127.0.0.1:9/hook"})
    create_rule(client, tenant, channel["channel_id"])
    post_alert(client, tenant)
    [row] = client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"]
    return row["job_id"]


def claimed(db, job_id):
    with db.system_scope("tests") as session:
        return claim(session, job_id, POLICY)


def record(db, record):
    with db.system_scope("tests") as session:
        return record_outcome(session, record)


def expire(db, job_id, outbox):
    """The lease of the job's attempt ends, and the sweeper comes by."""
    age(db, job_id, claim_lease(POLICY).total_seconds() + 1)
    report = SweepReport()
    with db.system_scope("tests") as session:
        expire_leases(session, POLICY, outbox, report)
    return report


def test_each_claim_is_one_numbered_attempt(db, job_id):
    first = claimed(db, job_id)
    assert first.attempt == 1 and first.budget_attempt == 1
    assert claimed(db, job_id) is None, "a claimed job cannot be claimed again while its lease holds"
    assert job(db, job_id).status == JobStatus.SENDING


def test_the_lease_is_measured_on_the_databases_clock(db, job_id):
    claimed(db, job_id)
    with db.system_scope("tests") as session:
        remaining = session.scalar(select(func.extract("epoch", job(db, job_id).next_attempt_at - func.now())))
    lease = claim_lease(POLICY).total_seconds()
    assert lease - 5 < float(remaining) <= lease


def test_a_late_success_never_moves_a_job_claimed_again(db, job_id, outbox):
    first = claimed(db, job_id)
    report = expire(db, job_id, outbox)
    assert report.leases_expired == 1
    assert job(db, job_id).status == JobStatus.RETRYING
    second = claimed(db, job_id)
    assert second.attempt == 2

    late = record(db, outcome(first, True))
    assert late.stale
    current = job(db, job_id)
    assert (current.status, current.attempts) == (JobStatus.SENDING, 2), "the late outcome changed nothing"

    assert record(db, outcome(second, True)).status == JobStatus.DELIVERED
    rows = log_rows(db, job_id)
    assert [(row.attempt, row.success) for row in rows] == [(1, True), (2, True)]
    assert "lease had expired" in rows[0].error, "the late outcome corrects its own attempt's row"


def test_a_delivered_job_never_goes_back(db, job_id, outbox):
    first = claimed(db, job_id)
    expire(db, job_id, outbox)
    second = claimed(db, job_id)
    assert record(db, outcome(second, True)).status == JobStatus.DELIVERED

    # The first attempt reports a failure after all: retrying, then dead-lettering.
    assert record(db, outcome(first, False, retry_in=30.0)).stale
    assert record(db, outcome(first, False)).stale
    assert job(db, job_id).status == JobStatus.DELIVERED
    # And a repeat of the delivered attempt's own outcome changes nothing either.
    assert record(db, outcome(second, False)).stale
    assert job(db, job_id).status == JobStatus.DELIVERED


def test_an_expired_lease_counts_as_a_failed_attempt(db, job_id, outbox):
    for attempt in (1, 2, 3):
        assert claimed(db, job_id).attempt == attempt
        expire(db, job_id, outbox)
    dead = job(db, job_id)
    assert dead.status == JobStatus.FAILED and dead.attempts == 3
    assert "attempt 3 of 3" in dead.last_error
    assert [row.attempt for row in log_rows(db, job_id)] == [1, 2, 3]
    assert all("worker lost" in row.error and row.duration_ms is None for row in log_rows(db, job_id))


def test_one_log_row_per_attempt_whatever_reports_twice(db, job_id, outbox):
    first = claimed(db, job_id)
    retry = outcome(first, False, retry_in=0.0, eta_message=True)
    assert record(db, retry).status == JobStatus.RETRYING
    assert record(db, retry).stale, "the same outcome again is stale"
    assert len(log_rows(db, job_id)) == 1


def test_an_outcome_kept_in_the_outbox_is_written_instead_of_expiring_the_lease(db, job_id, outbox):
    first = claimed(db, job_id)
    assert outbox.put(outcome(first, True))
    report = expire(db, job_id, outbox)
    assert (report.outcomes_written, report.leases_expired) == (1, 0)
    assert job(db, job_id).status == JobStatus.DELIVERED
    assert outbox.get(job_id, 1) is None
