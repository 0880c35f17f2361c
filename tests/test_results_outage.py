"""Results survive a database outage: an attempt that delivered is never sent again for it (DESIGN §5a).

The worker and the API use a PostgreSQL server of this test's own. The receiver holds its
answer while the test stops that server, so the attempt ends with the database gone: the
results hook cannot write the outcome, keeps it in the outbox and hands it to the results
task, which writes it once the server is back.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.pg_cluster import ThrowawayPostgres, migrated
from tests.support import PrivateStack, create_channel, create_rule, post_alert, wait_for

OUTAGE_SECONDS = 12.0


@pytest.fixture
def postgres():
    server = ThrowawayPostgres().create()
    yield server
    server.close()


@pytest.fixture
def stack(app, postgres):
    url = migrated(postgres.create_database("pulse_outage"))
    stack = PrivateStack(6, {"DATABASE_URL": url})
    stack.worker()
    stack.beat()
    yield stack
    stack.close()


def test_an_outcome_that_meets_a_database_outage_is_written_later_and_not_sent_again(stack, postgres, receiver):
    tenant = stack.tenant()
    # The receiver answers (within the attempt's timeout) only once the database is gone.
    receiver.hold = threading.Event()
    channel = create_channel(stack.client, tenant, "webhook", {"url": receiver.url()})
    create_rule(stack.client, tenant, channel["channel_id"])
    post_alert(stack.client, tenant)

    wait_for(lambda: receiver.at(), message="the attempt to reach the receiver")
    postgres.stop()
    receiver.hold.set()
    time.sleep(OUTAGE_SECONDS)  # longer than the hook keeps trying
    postgres.start()
    stack.db.dispose()

    def delivered():
        try:
            jobs = stack.client.get("/api/v2/deliveries", headers=tenant.admin).get_json()["items"]
        except Exception:
            return None
        return jobs if jobs and jobs[0]["status"] == "DELIVERED" else None

    [job] = wait_for(delivered, timeout=90, message="the handed-over outcome to be written")
    assert job["attempts"] == 1
    log = stack.client.get(f"/api/v2/deliveries/{job['job_id']}", headers=tenant.admin).get_json()["log"]
    assert [(row["attempt"], row["success"], row["status_code"]) for row in log] == [(1, True, 200)]
    time.sleep(3)  # a sweep or two more: nothing is sent again
    assert len(receiver.at()) == 1
    worker_log = stack.processes[0].log()
    assert "handing it over" in worker_log
