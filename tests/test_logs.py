"""Log lines are JSON objects carrying the delivery's identity, and never its secrets (issue 7, DESIGN §10)."""

from __future__ import annotations

import json
import logging

import pytest

from app.logs import configure_logging
from tasks import PER_TASK_LOGGERS
from tests.support import PrivateStack, create_channel, create_rule, post_alert, settled, wait_for

SECRET = "Bearer s3cr3t-never-logged"


@pytest.fixture
def stack(app):
    stack = PrivateStack(11, {"PULSE_LOG_FORMAT": "json", "WORKER_METRICS_PORT": "0"})
    stack.worker(concurrency=2)
    yield stack
    stack.close()


def json_lines(text: str) -> list[dict]:
    """The worker's log records (its banner, printed by Celery itself, is not one)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_failed_attempt_is_one_json_line_with_the_delivery_identity(stack, receiver):
    tenant = stack.tenant()
    receiver.script("/hook", [(400, {}, b"bad payload")])
    channel = create_channel(
        stack.client, tenant, "webhook", {"url": receiver.url(), "secret_headers": {"Authorization": SECRET}}
    )
    create_rule(stack.client, tenant, channel["channel_id"])
    alert = post_alert(stack.client, tenant)
    [job] = wait_for(lambda: settled(stack.client, tenant, 1), message="the job to fail")
    assert job["status"] == "FAILED"

    log = stack.processes[0].log()
    records = wait_for(
        lambda: [r for r in json_lines(stack.processes[0].log()) if r.get("job_id") == job["job_id"]],
        message="the attempt's log line",
    )
    [failed] = [r for r in records if "failed" in r["message"]]
    assert failed["level"] == "INFO" and failed["logger"] == "app.delivery.service"
    assert {key: failed[key] for key in ("job_id", "alert_id", "tenant_id", "channel_id", "channel_type")} == {
        "job_id": job["job_id"],
        "alert_id": alert["alert_id"],
        "tenant_id": tenant.tenant_id,
        "channel_id": channel["channel_id"],
        "channel_type": "webhook",
    }
    assert "dead-lettered" in failed["message"] and failed["time"]
    # Celery's own records are JSON too, but not its two lines per task at INFO (the
    # delivery log says more); nothing the worker wrote carries the secret.
    assert any(r["logger"].startswith("celery") for r in json_lines(log))
    assert not [r for r in json_lines(log) if r["logger"] in PER_TASK_LOGGERS and r["level"] == "INFO"]
    assert SECRET not in stack.processes[0].log()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_format_is_chosen_by_setting(log_format, capsys):
    configure_logging(log_format)
    try:
        logging.getLogger("pulse.test").warning("circuit of channel %s opened", 7, extra={"channel_id": 7})
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure_logging("text")
    if log_format == "json":
        record = json.loads(line)
        assert (record["level"], record["logger"], record["message"], record["channel_id"]) == (
            "WARNING", "pulse.test", "circuit of channel 7 opened", 7
        )
    else:
        assert line.endswith("WARNING pulse.test: circuit of channel 7 opened")
