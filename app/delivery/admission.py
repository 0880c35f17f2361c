"""Per-channel admission: the bulkhead and the circuit breaker, shared by every worker in Redis.

Before an attempt is made, `admit()` asks the channel's Redis state, in one atomic script:

* **Circuit breaker.** After `CIRCUIT_FAILURE_THRESHOLD` consecutive transient failures a
  channel's circuit opens for `CIRCUIT_OPEN_SECONDS`; while it is open no attempt is let
  through. When the period has passed, exactly one attempt (the probe) is let through, across
  every worker (half-open): its success closes the circuit, its failure opens it again for
  twice as long, at most `CIRCUIT_OPEN_MAX_SECONDS`. A failure that says nothing about the
  receiver (a refused destination, an invalid configuration) neither counts nor resets; an
  answer from the receiver, even a refusal (4xx), shows it is reachable and closes the circuit.
* **Bulkhead.** At most `DELIVERY_CONCURRENCY_PER_CHANNEL` attempts hold a slot of one channel
  at once. A slot is a member of a sorted set scored with its expiry, so the slot of a worker
  that died frees itself when the attempt's lease would have ended.

`release()` gives the slot back and records the attempt's outcome in the circuit, in one script
too, and says whether the circuit opened or closed and how many slots are free.

Written here rather than taken from a library: pybreaker (the well-kept Python breaker) keeps
shared state in Redis but decides in the calling process, so two workers can both send a
half-open probe, and it has no doubling open period nor a way to ask "may I?" before claiming
a job; the checks must be one atomic Redis step shared by every worker (as convoy's
circuit_breaker does). Losing the Redis state only closes circuits and frees slots: if Redis
cannot be reached, attempts are admitted (delivery never stops for want of bookkeeping).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

import redis

from app.config import CIRCUIT_OPEN_MAX_SECONDS, DeliverySettings

log = logging.getLogger(__name__)

OPEN_CIRCUITS = "pulse:circuits:open"
# A circuit's state is kept this long after its last change, then forgotten (closed).
STATE_TTL_SECONDS = 7 * 86400

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: slots, circuit. ARGV: token, limit, slot ttl (ms).
# Returns {verdict, wait ms}: ok, probe, busy, or open (wait ms until it may be tried again).
_ADMIT = _NOW + """
local token, limit, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HGET', KEYS[2], 'state')
local probe = false
if state == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[2], 'open_until') or '0')
  if now < open_until then return {'open', open_until - now} end
  probe = true
elseif state == 'half_open' then
  local probe_until = tonumber(redis.call('HGET', KEYS[2], 'probe_until') or '0')
  if now < probe_until then return {'open', probe_until - now} end
  probe = true
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then return {'busy', 0} end
redis.call('ZADD', KEYS[1], now + ttl, token)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
if probe then
  redis.call('HSET', KEYS[2], 'state', 'half_open', 'probe', token, 'probe_until', now + ttl)
  return {'probe', 0}
end
return {'ok', 0}
"""

# KEYS: slots, circuit, open circuits. ARGV: token, outcome (success, failure, answered, none),
# error, threshold, base open ms, max open ms, channel id, limit, state ttl (s).
# Returns {transition ('', 'opened', 'closed'), free slots}.
_RELEASE = _NOW + """
local token, outcome, err = ARGV[1], ARGV[2], ARGV[3]
local threshold, base, longest = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local channel, limit, keep = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('ZREM', KEYS[1], token)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = limit - redis.call('ZCARD', KEYS[1])
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
local is_probe = state == 'half_open' and redis.call('HGET', KEYS[2], 'probe') == token
local transition = ''
if outcome == 'success' or outcome == 'answered' then
  if outcome == 'success' then
    redis.call('HSET', KEYS[2], 'last_success_at', now)
  else
    redis.call('HSET', KEYS[2], 'last_failure_at', now, 'last_error', err)
  end
  redis.call('HSET', KEYS[2], 'failures', 0)
  if state ~= 'closed' and (state ~= 'open' or is_probe) then
    redis.call('HSET', KEYS[2], 'state', 'closed')
    redis.call('HDEL', KEYS[2], 'open_until', 'open_ms', 'probe', 'probe_until')
    redis.call('ZREM', KEYS[3], channel)
    transition = 'closed'
  end
elseif outcome == 'failure' then
  local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
  redis.call('HSET', KEYS[2], 'last_failure_at', now, 'last_error', err)
  local period = nil
  if is_probe then
    period = math.min((tonumber(redis.call('HGET', KEYS[2], 'open_ms')) or base) * 2, longest)
  elseif state == 'closed' and failures >= threshold then
    period = base
  end
  if period then
    redis.call('HSET', KEYS[2], 'state', 'open', 'open_until', now + period, 'open_ms', period)
    redis.call('HDEL', KEYS[2], 'probe', 'probe_until')
    redis.call('ZADD', KEYS[3], now + period, channel)
    transition = 'opened'
  end
elseif is_probe then
  -- An outcome that says nothing about the receiver: let the next attempt probe at once.
  redis.call('HDEL', KEYS[2], 'probe', 'probe_until')
end
redis.call('EXPIRE', KEYS[2], keep)
return {transition, free}
"""

# KEYS: circuit, open circuits. ARGV: channel id, state ttl (s). Returns 1 if it was not closed.
_CLOSE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
redis.call('HDEL', KEYS[1], 'open_until', 'open_ms', 'probe', 'probe_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
if state ~= 'closed' then return 1 end
return 0
"""

# Outcomes as the circuit counts them.
SUCCESS = "success"  # delivered
FAILURE = "failure"  # transient: timeout, connection error, 408, 429, 5xx
ANSWERED = "answered"  # the receiver answered with a refusal (a permanent 4xx): it is reachable
NEUTRAL = "none"  # says nothing about the receiver (refused destination, bad configuration)


@dataclass(frozen=True)
class Admission:
    """The verdict on one attempt: `ok`, `probe` (the half-open probe), `busy` or `open`."""

    verdict: str
    wait_seconds: float = 0.0

    @property
    def admitted(self) -> bool:
        return self.verdict in ("ok", "probe")


@dataclass(frozen=True)
class Released:
    """What giving a slot back changed: the circuit's transition and the free slots."""

    transition: str = ""
    free_slots: int = 0


@dataclass(frozen=True)
class Health:
    """A channel's circuit as DESIGN §6 answers it (`health`)."""

    state: str = "closed"
    consecutive_failures: int = 0
    open_until: datetime | None = None
    last_error: str | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None


def _time(value: bytes | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, timezone.utc)


def slots_key(channel_id: int) -> str:
    return f"pulse:channel:{channel_id}:slots"


def circuit_key(channel_id: int) -> str:
    return f"pulse:channel:{channel_id}:circuit"


class ChannelAdmission:
    """Bulkheads and circuit breakers of every channel, in one Redis."""

    def __init__(self, client: redis.Redis, settings: DeliverySettings, slot_ttl_seconds: float):
        self._redis = client
        self._settings = settings
        self._slot_ttl_ms = int(slot_ttl_seconds * 1000)
        self._admit = client.register_script(_ADMIT)
        self._release = client.register_script(_RELEASE)
        self._close = client.register_script(_CLOSE)

    def admit(self, channel_id: int, token: str) -> Admission:
        """May attempt `token` (a job's attempt) go to `channel_id` now?"""
        try:
            verdict, wait_ms = self._admit(
                keys=[slots_key(channel_id), circuit_key(channel_id)],
                args=[token, self._settings.concurrency_per_channel, self._slot_ttl_ms],
            )
        except redis.RedisError as exc:
            log.warning("channel admission unavailable, admitting: %s", type(exc).__name__, extra={"channel_id": channel_id})
            return Admission("ok")
        return Admission(verdict.decode(), int(wait_ms) / 1000)

    def release(self, channel_id: int, token: str, outcome: str, error: str | None = None) -> Released:
        """Give `token`'s slot back and count its outcome in the channel's circuit."""
        settings = self._settings
        try:
            transition, free = self._release(
                keys=[slots_key(channel_id), circuit_key(channel_id), OPEN_CIRCUITS],
                args=[
                    token,
                    outcome,
                    (error or "")[:500],
                    settings.circuit_failure_threshold,
                    int(settings.circuit_open_seconds * 1000),
                    CIRCUIT_OPEN_MAX_SECONDS * 1000,
                    channel_id,
                    settings.concurrency_per_channel,
                    STATE_TTL_SECONDS,
                ],
            )
        except redis.RedisError as exc:
            log.warning("channel admission unavailable at release: %s", type(exc).__name__, extra={"channel_id": channel_id})
            return Released()
        released = Released(transition.decode(), int(free))
        if released.transition:
            log.warning("circuit of channel %s %s", channel_id, released.transition, extra={"channel_id": channel_id})
        return released

    def close(self, channel_id: int) -> bool:
        """Close the channel's circuit (a test send got through); True if it was not closed."""
        try:
            return bool(self._close(keys=[circuit_key(channel_id), OPEN_CIRCUITS], args=[channel_id, STATE_TTL_SECONDS]))
        except redis.RedisError as exc:
            log.warning("channel admission unavailable: %s", type(exc).__name__, extra={"channel_id": channel_id})
            return False

    def free_slots(self, channel_id: int) -> int:
        """Slots of the channel not held by a live attempt."""
        try:
            seconds, micros = self._redis.time()
            held = self._redis.zcount(slots_key(channel_id), seconds * 1000 + micros // 1000, "+inf")
        except redis.RedisError:
            return self._settings.concurrency_per_channel
        return max(0, self._settings.concurrency_per_channel - int(held))

    def health(self, channel_ids: Iterable[int]) -> dict[int, Health]:
        """Each channel's circuit; closed for a channel Redis knows nothing about (or is down)."""
        ids = list(channel_ids)
        if not ids:
            return {}
        try:
            pipe = self._redis.pipeline(transaction=False)
            for channel_id in ids:
                pipe.hgetall(circuit_key(channel_id))
            states = pipe.execute()
        except redis.RedisError as exc:
            log.warning("channel health unavailable: %s", type(exc).__name__)
            return {channel_id: Health() for channel_id in ids}
        return {channel_id: _health(state) for channel_id, state in zip(ids, states)}

    def open_circuits(self) -> dict[int, datetime]:
        """Channels whose circuit is open (or half-open), with when they may be probed."""
        try:
            members = self._redis.zrange(OPEN_CIRCUITS, 0, -1, withscores=True)
        except redis.RedisError as exc:
            log.warning("open circuits unavailable: %s", type(exc).__name__)
            return {}
        return {int(member): _time(str(int(score)).encode()) for member, score in members}


def _health(state: dict[bytes, bytes]) -> Health:
    def text(name: str) -> str | None:
        value = state.get(name.encode())
        return value.decode() if value else None

    circuit = text("state") or "closed"
    return Health(
        state=circuit,
        consecutive_failures=int(text("failures") or 0),
        open_until=_time(state.get(b"open_until")) if circuit == "open" else None,
        last_error=text("last_error"),
        last_success_at=_time(state.get(b"last_success_at")),
        last_failure_at=_time(state.get(b"last_failure_at")),
    )
