"""The delivery workflow: claim a job, ask its channel for admission, send once, record the outcome.

`Deliveries.attempt()` is the body of the Celery task `pulse.deliver`; `Deliveries.record()`
is its results hook (`on_success`, `on_retry`, `on_failure`), and `record_handed_over()` the
task that writes an outcome the hook could not. The retry policy lives here and in
`app.delivery.policy`, not in the senders: they make one attempt and say whether a failure is
transient.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from app.channels import DeliveryError, Notification, PermanentError, SendContext, TransientError, get_sender
from app.config import DeliverySettings
from app.db import Database
from app.delivery import admission as outcomes
from app.delivery.admission import Admission, ChannelAdmission
from app.delivery.jobs import (
    ClaimedJob,
    claim,
    consumed_without_claim,
    feed_channel,
    feed_tenant,
    hold,
    record_outcome,
    release_circuit_holds,
)
from app.delivery.metrics import DeliveryMetrics
from app.delivery.outbox import OutcomeOutbox
from app.delivery.policy import attempts_left, by_eta_message, retry_delay
from app.delivery.records import AttemptFailed, AttemptRecord, RetryableAttemptFailed
from app.dispatch import Dispatcher
from app.models import HOLD_CHANNEL_BUSY, HOLD_CIRCUIT_OPEN, NotificationChannel
from app.secrets import SecretBox, channel_config
from app.status import Event

if TYPE_CHECKING:
    from app.acklinks import AckLinks

log = logging.getLogger(__name__)

# The delivery path runs on the driver (Database.work), which raises its errors as these.
DATABASE_ERRORS = (OperationalError, InterfaceError)
# How long the results hook keeps trying the database before it hands the outcome over.
RECORD_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)


class ChannelConfigs:
    """Validated channel configs, secrets decrypted, kept per channel until the channel changes.

    Decrypting and validating a config on every attempt costs more than the attempt's own
    database work; a channel's `updated_at` says when a kept one is stale.
    """

    def __init__(self, box: SecretBox, size: int = 1024):
        self._box = box
        self._size = size
        self._lock = threading.Lock()
        self._configs: OrderedDict[int, tuple[Any, Any]] = OrderedDict()

    def get(self, channel: NotificationChannel) -> Any:
        """The channel's config model; PermanentError if it cannot be used."""
        with self._lock:
            kept = self._configs.get(channel.channel_id)
            if kept is not None and kept[0] == channel.updated_at:
                self._configs.move_to_end(channel.channel_id)
                return kept[1]
        config = channel_config(self._box, channel)
        with self._lock:
            self._configs[channel.channel_id] = (channel.updated_at, config)
            while len(self._configs) > self._size:
                self._configs.popitem(last=False)
        return config


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


# The events whose notifications carry an acknowledge link.
ACK_LINK_EVENTS = (Event.OPEN, Event.ESCALATED)


def as_utc(value: datetime | str) -> datetime:
    """A time read by a raw statement (SQLite gives text, without an offset): aware, in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class Deliveries:
    """Attempts and outcomes of notification jobs in one process."""

    def __init__(
        self,
        db: Database,
        settings: DeliverySettings,
        admission: ChannelAdmission,
        dispatcher: Dispatcher,
        outbox: OutcomeOutbox,
        configs: ChannelConfigs,
        metrics: DeliveryMetrics | None = None,
        ack_links: AckLinks | None = None,
    ):
        self.metrics = metrics
        self.ack_links = ack_links
        self.db = db
        self.settings = settings
        self.admission = admission
        self.dispatcher = dispatcher
        self.outbox = outbox
        self.configs = configs

    # The attempt -----------------------------------------------------------------------

    def attempt(self, job_id: int) -> AttemptRecord | None:
        """Claim and send job `job_id` once; None when there was nothing to send now.

        Returns the record of a delivered attempt; raises `RetryableAttemptFailed` (a
        transient failure with attempts left) or `AttemptFailed` (dead-lettered).
        """
        # The job's tenant is not known before it is read: the claim is the delivery
        # worker's own cross-tenant step (it names the job by its id).
        with self.db.system_work("claim") as session:
            claimed = claim(session, job_id, self.settings)
        to_send: list = []
        if claimed is None:
            with self.db.system_work("claim") as session:
                freed = consumed_without_claim(session, job_id)
                to_send = feed_tenant(session, *freed, self.settings) if freed else []
        else:
            # The tenant's share of the queue shrank by this job: top it up once it is down
            # to half, so the queue stays fed while the send below takes its time.
            if claimed.share.needs_feeding(self.settings):
                with self.db.work(claimed.tenant_id) as session:
                    to_send = feed_tenant(session, claimed.tenant_id, claimed.queue, self.settings)
            channel_type, config, unusable = self._channel(claimed)
        self.dispatcher.send(to_send)
        if claimed is None:
            return None

        verdict = self.admission.admit(claimed.channel_id, claimed.token)
        if not verdict.admitted:
            self._hold(claimed, verdict)
            return None
        return self._send(claimed, channel_type, config, unusable)

    def _channel(self, claimed: ClaimedJob) -> tuple[str | None, Any, DeliveryError | None]:
        channel = claimed.channel
        if channel is None:
            return None, None, PermanentError("the channel no longer exists")
        if channel.deleted_at is not None:
            return channel.channel_type, None, PermanentError("the channel was deleted")
        if not channel.is_enabled:
            return channel.channel_type, None, PermanentError("the channel is disabled")
        try:
            return channel.channel_type, self.configs.get(channel), None
        except DeliveryError as exc:
            return channel.channel_type, None, exc

    def _payload(self, claimed: ClaimedJob) -> dict:
        """The payload as sent: an OPEN or ESCALATED event carries its channel's acknowledge link."""
        payload = claimed.payload
        if self.ack_links is not None and payload.get("event_type") in ACK_LINK_EVENTS and claimed.event_at is not None:
            url = self.ack_links.url(claimed.tenant_id, claimed.alert_id, claimed.channel_id, as_utc(claimed.event_at))
            payload = {**payload, "ack_url": url}
        return payload

    def _send(self, claimed: ClaimedJob, channel_type: str | None, config: Any, unusable: DeliveryError | None) -> AttemptRecord:
        started = time.perf_counter()
        failure: DeliveryError | None = unusable
        cause: BaseException | None = None
        result = None
        if failure is None:
            try:
                notification = Notification(payload=self._payload(claimed), message_id=str(claimed.job_id))
                result = get_sender(channel_type).send(config, notification, SendContext(self.settings))
            except DeliveryError as exc:
                failure, cause = exc, exc
            except Exception as exc:  # a sender bug must still end in the log, never as a lost job
                log.exception("the %s sender failed", channel_type, extra=self._context(claimed, channel_type))
                failure = PermanentError(f"internal error in the {channel_type} sender: {type(exc).__name__}")
                cause = exc
        duration_ms = _elapsed_ms(started)

        if failure is None:
            record = self._record(claimed, channel_type, True, duration_ms, result.status_code, result.detail)
            self._release(claimed, outcomes.SUCCESS, None)
            self._observe(record)
            return record

        transient = isinstance(failure, TransientError)
        retry_in = None
        detail = failure.message
        if transient:
            if attempts_left(claimed.budget_attempt, self.settings):
                retry_in = retry_delay(claimed.budget_attempt, self.settings, failure.retry_after)
            else:
                detail = f"{failure.message} (attempt {claimed.budget_attempt} of {self.settings.attempts_allowed})"
            circuit = outcomes.FAILURE
        elif unusable is not None or failure.status_code is None:
            circuit = outcomes.NEUTRAL
        else:
            circuit = outcomes.ANSWERED
        record = self._record(
            claimed,
            channel_type,
            False,
            duration_ms,
            failure.status_code,
            detail,
            retry_in=retry_in,
            eta_message=retry_in is not None and by_eta_message(retry_in, self.settings),
            counts_for_circuit=circuit != outcomes.NEUTRAL,
        )
        self._release(claimed, circuit, detail)
        self._observe(record)
        log.info(
            "attempt %s of job %s failed%s: %s",
            claimed.attempt,
            claimed.job_id,
            f"; next in {retry_in:.1f} s" if retry_in is not None else "; dead-lettered",
            detail,
            extra=self._context(claimed, channel_type),
        )
        error = RetryableAttemptFailed(record) if retry_in is not None else AttemptFailed(record)
        raise error from cause

    def _observe(self, record: AttemptRecord) -> None:
        if self.metrics is not None:
            self.metrics.observe(record)

    @staticmethod
    def _record(claimed: ClaimedJob, channel_type, success, duration_ms, status_code, detail, **extra) -> AttemptRecord:
        return AttemptRecord(
            job_id=claimed.job_id,
            tenant_id=claimed.tenant_id,
            alert_id=claimed.alert_id,
            channel_id=claimed.channel_id,
            channel_type=channel_type,
            queue=claimed.queue,
            attempt=claimed.attempt,
            budget_attempt=claimed.budget_attempt,
            success=success,
            duration_ms=duration_ms,
            status_code=status_code,
            detail=detail,
            **extra,
        )

    @staticmethod
    def _context(claimed: ClaimedJob, channel_type: str | None) -> dict[str, Any]:
        return {
            "job_id": claimed.job_id,
            "alert_id": claimed.alert_id,
            "tenant_id": claimed.tenant_id,
            "channel_id": claimed.channel_id,
            "channel_type": channel_type,
        }

    def _release(self, claimed: ClaimedJob, outcome: str, error: str | None) -> None:
        released = self.admission.release(claimed.channel_id, claimed.token, outcome, error)
        if released.transition == "closed":
            self.reopen(claimed.channel_id)

    def _hold(self, claimed: ClaimedJob, verdict: Admission) -> None:
        """The channel cannot take the attempt now: the job waits, its attempt unspent."""
        busy = verdict.verdict == "busy"
        reason = HOLD_CHANNEL_BUSY if busy else HOLD_CIRCUIT_OPEN
        with self.db.work(claimed.tenant_id) as session:
            hold(session, claimed, reason, 0.0 if busy else verdict.wait_seconds)
        if busy:
            # A slot may have freed between the verdict and the hold, and its holder found
            # nothing held yet: look once more, now that this job is held.
            self.feed_channel(claimed.tenant_id, claimed.channel_id, at_most=1)

    def feed_channel(self, tenant_id: str, channel_id: int, at_most: int | None = None) -> int:
        """Send jobs held for the channel: as many as it has free slots, `at_most` if given.

        A finished attempt feeds one job, the one its own slot can take: several attempts
        ending together would otherwise each feed every free slot, and the surplus would
        only find the channel full again.
        """
        free = self.admission.free_slots(channel_id)
        if at_most is not None:
            free = min(free, at_most)
        if not free:
            return 0
        with self.db.work(tenant_id) as session:
            to_send = feed_channel(session, channel_id, free, self.settings)
        return self.dispatcher.send(to_send)

    def reopen(self, channel_id: int) -> None:
        """The channel's circuit closed: its jobs held for the circuit go out at its pace."""
        with self.db.system_scope("circuit-reopen") as session:
            channel = session.get(NotificationChannel, channel_id)
            if channel is None:
                return
            release_circuit_holds(session, channel_id)
            tenant_id = channel.tenant_id
        self.feed_channel(tenant_id, channel_id)

    # The outcome -----------------------------------------------------------------------

    def record(self, record: AttemptRecord) -> None:
        """Write an attempt's outcome; if the database stays unreachable, hand it over.

        The outcome is retried for a few seconds, then kept in the outbox and given to the
        results task, which writes it once the database is back. The notification is never
        sent again for want of its outcome: the sweeper reads the outbox first.
        """
        last_error: Exception | None = None
        for delay in (0.0, *RECORD_RETRY_DELAYS):
            if delay:
                time.sleep(delay)
            try:
                self._write(record)
                return
            except DATABASE_ERRORS as exc:
                last_error = exc
        log.error(
            "database unreachable for the outcome of attempt %s of job %s (%s); handing it over",
            record.attempt,
            record.job_id,
            type(getattr(last_error, "orig", last_error)).__name__,
            extra={"job_id": record.job_id, "tenant_id": record.tenant_id, "channel_type": record.channel_type},
        )
        if self.outbox.put(record):
            self.dispatcher.send_record(record)

    def record_handed_over(self, record: AttemptRecord) -> None:
        """The results task: write a handed-over outcome. Raises while the database is down.

        Writing it twice (the sweeper may have found it in the outbox first) changes nothing.
        """
        self._write(record)
        self.outbox.discard(record.job_id, record.attempt)

    def _write(self, record: AttemptRecord) -> None:
        with self.db.work(record.tenant_id) as session:
            recorded = record_outcome(session, record)
        to_send = list(recorded.to_send)
        if recorded.share is not None and recorded.share.needs_feeding(self.settings):
            # Claims made together each saw the others' messages still waiting; the outcome
            # sees them all taken, so a share that ran low is fed here if no claim did.
            with self.db.work(record.tenant_id) as session:
                to_send += feed_tenant(session, record.tenant_id, record.queue, self.settings)
        held = recorded.channel_held
        if recorded.stale:
            log.warning(
                "late outcome of attempt %s of job %s logged; the job had moved on",
                record.attempt,
                record.job_id,
                extra={"job_id": record.job_id, "tenant_id": record.tenant_id},
            )
        self.dispatcher.send(to_send)
        if held:
            self.feed_channel(record.tenant_id, record.channel_id, at_most=1)
