"""Silences and maintenance windows (DESIGN §6a): when one holds, what it matches, and its end.

A silence holds from `starts_at` to `ends_at`. A maintenance window repeats: its `recurrence`
is an RFC 5545 RRULE (read by python-dateutil, never by hand) anchored at the wall-clock time
of `starts_at` in an IANA time zone, so an occurrence keeps its local time across
daylight-saving changes; each occurrence lasts `duration_seconds`, and `ends_at` (optional)
ends the series. Everything here takes `now` as a parameter: the callers pass the clock.

While a silence holds, an OPEN event it matches gets `SUPPRESSED` jobs on the silenced
channels (`app.alerts`), each remembering the silence (`silence_id`). When the silence stops
holding (its time passed, an occurrence closed, it was deleted), `release_ended` sends the
suppressed OPEN jobs of alerts still OPEN, if the silence has `notify_on_end`; otherwise, or
once the alert moved on, the jobs stay suppressed for good.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import HOURLY, rrule, rrulestr
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.db import db_now
from app.models import Alert, NotificationJob, Silence
from app.routing import AlertFacts, failed_filters
from app.status import AlertStatus, Event, JobStatus

# One RRULE value (`FREQ=WEEKLY;BYDAY=SU;...`, optionally prefixed `RRULE:`): no DTSTART,
# EXDATE or second rule, which rrulestr would otherwise read from a multi-line string.
RRULE_TEXT = re.compile(r"^(RRULE:)?[A-Z]+=[^;\s]+(;[A-Z]+=[^;\s]+)*$")
# Shorter periods than an hour are no maintenance window, and an impossible SECONDLY rule
# would keep dateutil searching for an occurrence for ages.
SLOWEST_FREQUENCY = HOURLY
MAX_DURATION_SECONDS = 31 * 86400
# How far in the past a maintenance window may be anchored (see `check`).
MAX_ANCHOR_AGE = timedelta(days=366)
# Jobs released per pass; the next pass (one sweep interval later) takes the rest.
BATCH = 1000


class InvalidSilence(ValueError):
    """A silence that does not parse: `field` names the offending part."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; InvalidSilence if there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSilence("recurrence.timezone", f"unknown IANA time zone {name!r}") from None


def parse_rule(text: str, starts_at: datetime, timezone_name: str) -> rrule:
    """The recurrence rule anchored at the local wall-clock time of `starts_at` in the zone."""
    if not RRULE_TEXT.match(text):
        raise InvalidSilence("recurrence.rrule", "expected one RRULE value, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=0")
    tz = zone(timezone_name)
    # An aware start: dateutil keeps each occurrence's wall-clock time and zoneinfo gives it
    # the offset in force on its own date (so 02:00 stays 02:00 across a DST change).
    try:
        dtstart = starts_at.astimezone(tz)
        rule = rrulestr(text, dtstart=dtstart)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise InvalidSilence("recurrence.rrule", f"not a valid RRULE: {exc}") from None
    if not isinstance(rule, rrule):
        raise InvalidSilence("recurrence.rrule", "expected a single RRULE")
    if rule._freq > SLOWEST_FREQUENCY:  # dateutil orders YEARLY (0) ... SECONDLY (6)
        raise InvalidSilence("recurrence.rrule", "a maintenance window repeats at most hourly")
    return rule


def check(starts_at: datetime, ends_at: datetime | None, recurrence: dict[str, Any] | None, now: datetime | None = None) -> None:
    """Refuse a silence whose times or recurrence do not make sense (InvalidSilence).

    With `now` (the anchor or the rule is being set), a maintenance window may not start more
    than `MAX_ANCHOR_AGE` ago: dateutil walks every occurrence from the anchor on each check.
    """
    if recurrence is not None and now is not None and starts_at < now - MAX_ANCHOR_AGE:
        raise InvalidSilence("starts_at", "a maintenance window may start at most a year ago")
    if recurrence is None:
        if ends_at is None:
            raise InvalidSilence("ends_at", "a one-off silence needs ends_at")
    else:
        parse_rule(recurrence["rrule"], starts_at, recurrence["timezone"])
    if ends_at is not None and ends_at <= starts_at:
        raise InvalidSilence("ends_at", "ends_at must be later than starts_at")


@dataclass(frozen=True)
class Window:
    """One period in which a silence holds."""

    starts_at: datetime
    ends_at: datetime


def window_at(silence: Any, now: datetime) -> Window | None:
    """The period of `silence` that holds at `now`, or None (not yet, between occurrences, over)."""
    if now < silence.starts_at or (silence.ends_at is not None and now >= silence.ends_at):
        return None
    if not silence.recurrence:
        return Window(silence.starts_at, silence.ends_at)
    recurrence = silence.recurrence
    rule = parse_rule(recurrence["rrule"], silence.starts_at, recurrence["timezone"])
    duration = timedelta(seconds=recurrence["duration_seconds"])
    tz = zone(recurrence["timezone"])
    try:
        starts = rule.between((now - duration - timedelta(days=1)).astimezone(tz), now.astimezone(tz) + timedelta(days=1), inc=True)
        for start in reversed(starts):
            start_utc = start.astimezone(timezone.utc)
            # The series' end cuts an occurrence short; one starting after it does not count.
            end = start_utc + duration if silence.ends_at is None else min(start_utc + duration, silence.ends_at)
            if start_utc <= now < end:
                return Window(start_utc, end)
    except OverflowError:  # at the calendar's edge (year 9999) no occurrence holds now
        return None
    return None


def holds(silence: Any, now: datetime) -> bool:
    """Whether `silence` is in force at `now` (the API's `active`)."""
    return window_at(silence, now) is not None


def matches(silence: Any, alert: AlertFacts, channel_id: int) -> bool:
    """Whether `silence` covers this alert on this channel (its matchers all hold; no matcher: all)."""
    if silence.channel_ids is not None and channel_id not in silence.channel_ids:
        return False
    return not failed_filters(silence.matchers or {}, alert)


def silence_for(silences: Iterable[Any], alert: AlertFacts, channel_id: int, now: datetime) -> int | None:
    """The silence (the oldest, by id) that suppresses this alert on this channel at `now`."""
    for silence in sorted(silences, key=lambda s: s.silence_id):
        if matches(silence, alert, channel_id) and holds(silence, now):
            return silence.silence_id
    return None


def in_force(silences: Iterable[Any], now: datetime) -> list[Any]:
    """Those of `silences` that may hold at `now` (started, not ended); `holds` decides."""
    return [s for s in silences if s.starts_at <= now and (s.ends_at is None or s.ends_at > now)]


def candidates(session: Session, tenant_id: str, now: datetime) -> list[Silence]:
    """The tenant's silences that may hold at `now` (started, not ended); `holds` decides."""
    return list(
        session.scalars(
            select(Silence).where(
                Silence.tenant_id == tenant_id,
                Silence.starts_at <= now,
                or_(Silence.ends_at.is_(None), Silence.ends_at > now),
            )
        )
    )


# The end of a silence -------------------------------------------------------------------


@dataclass
class Released:
    """What one pass over ended silences did."""

    released: list[int]
    kept: int = 0
    reassigned: int = 0


def _release(session: Session, job_ids: list[int]) -> None:
    if job_ids:
        session.execute(
            update(NotificationJob)
            .where(NotificationJob.job_id.in_(job_ids), NotificationJob.status == JobStatus.SUPPRESSED)
            .values(
                status=JobStatus.PENDING,
                silence_id=None,
                last_error=None,
                released_at=db_now(session),
                # Its age (DELIVERY_MAX_AGE_SECONDS) counts from its release, as after a replay.
                replayed_at=db_now(session),
                next_attempt_at=db_now(session),
                enqueued_at=None,
                updated_at=db_now(session),
            )
            .execution_options(synchronize_session=False)
        )


def _settle(session: Session, job_ids: list[int]) -> None:
    """These suppressed jobs will never be released: they forget their silence."""
    if job_ids:
        session.execute(
            update(NotificationJob)
            .where(NotificationJob.job_id.in_(job_ids))
            .values(silence_id=None, updated_at=db_now(session))
            .execution_options(synchronize_session=False)
        )


def release_ended(session: Session, now: datetime, only_silence: Silence | None = None) -> Released:
    """Release the suppressed OPEN jobs whose silence no longer holds (DESIGN §6a).

    A job whose alert is still OPEN goes out if its silence has `notify_on_end`, unless
    another silence holds for it now (it then waits for that one). Jobs of acknowledged or
    closed alerts, and of silences without `notify_on_end`, stay suppressed for good.
    `only_silence` limits the pass to the jobs of one silence, which is treated as ended
    (it is being deleted). Runs in the caller's transaction; the released jobs' ids are
    returned for feeding.
    """
    from app.alerts import alert_facts  # the alert's facts, read as dispatch reads them

    if only_silence is not None:
        ended = [only_silence]
    else:
        # The silences that still have jobs to release, and of those the ones that ended.
        holding_jobs = select(NotificationJob.silence_id).where(
            NotificationJob.status == JobStatus.SUPPRESSED, NotificationJob.silence_id.is_not(None)
        )
        ended = [s for s in session.scalars(select(Silence).where(Silence.silence_id.in_(holding_jobs.distinct()))) if not holds(s, now)]
    if not ended:
        return Released(released=[])
    rows = session.execute(
        select(NotificationJob, Alert, Silence)
        .join(Alert, Alert.alert_id == NotificationJob.alert_id)
        .join(Silence, Silence.silence_id == NotificationJob.silence_id)
        .where(
            NotificationJob.status == JobStatus.SUPPRESSED,
            NotificationJob.silence_id.in_([s.silence_id for s in ended]),
        )
        .order_by(NotificationJob.job_id)
        .limit(BATCH)
    ).all()
    outcome = Released(released=[])
    forget: list[int] = []
    tenants: dict[str, list[Silence]] = {}
    for job, alert, silence in rows:
        if alert.status != AlertStatus.OPEN or job.event_type != Event.OPEN or not silence.notify_on_end:
            forget.append(job.job_id)
            outcome.kept += 1
            continue
        if alert.tenant_id not in tenants:
            tenants[alert.tenant_id] = candidates(session, alert.tenant_id, now)
        others = [s for s in tenants[alert.tenant_id] if s.silence_id != silence.silence_id]
        other = silence_for(others, alert_facts(session, alert), job.channel_id, now)
        if other is not None:
            job.silence_id = other
            job.last_error = f"suppressed by silence {other}"
            outcome.reassigned += 1
            continue
        outcome.released.append(job.job_id)
    _settle(session, forget)
    if outcome.released:
        # The alert row's lock orders this against an acknowledge or close in flight: either
        # that one sees the OPEN job released (and its own job follows it), or this pass
        # sees the alert no longer OPEN.
        alert_ids = sorted({alert.alert_id for job, alert, _ in rows if job.job_id in outcome.released})
        still_open = set(
            session.scalars(
                select(Alert.alert_id).where(Alert.alert_id.in_(alert_ids), Alert.status == AlertStatus.OPEN).with_for_update()
            )
        )
        gone = [job.job_id for job, alert, _ in rows if job.job_id in outcome.released and alert.alert_id not in still_open]
        outcome.released = [job_id for job_id in outcome.released if job_id not in gone]
        _settle(session, gone)
        _release(session, outcome.released)
    session.flush()
    return outcome
