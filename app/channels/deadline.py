"""One deadline per delivery attempt, enforced on everything the attempt waits for.

`DELIVERY_TIMEOUT_SECONDS` bounds a whole attempt, not each socket read (DESIGN §5a): a
receiver that sends one byte every 9 s never trips a 10 s read timeout, yet must not hold a
worker thread for more than 10 s. There are two ways to bound the sum of the reads: give every
read only the time that remains, or let a watchdog shut the attempt's sockets down when its
deadline passes. Pulse uses the watchdog, because the reads are not Pulse's own: urllib3 and
http.client, smtplib, the ssl module inside a TLS handshake and paho's network thread each
read in loops of their own, and a per-read timeout would need a hook inside every one of
them (and inside OpenSSL's handshake), where the watchdog needs only the socket, registered
once when it is opened or reused. `shutdown()` ends a read or write blocked on the socket at
once, in whichever thread it is blocked; the library reports a closed connection, and the
sender, seeing that the deadline fired, reports the timeout it is.

What no socket covers is bounded where it happens: name resolution runs in a helper thread
that the attempt waits for no longer than the time that remains (`run_within()`), and
connecting takes the remaining time as its timeout.

The watchdog holds a duplicate of each socket's descriptor (its own, closed when the attempt
ends): a descriptor number that the library closed and the kernel gave to another connection
meanwhile is never shut down by mistake. Threads and locks here are native even in a process
that gevent patched (the web process runs test sends in native threads of gevent's pool).
"""

from __future__ import annotations

import _socket
import heapq
import itertools
import os
import socket
import sys
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

# Helper threads blocked in the C library at once; beyond this, an attempt fails at once
# rather than leave yet another thread behind.
MAX_PENDING_CALLS = 64

# How late the watchdog may expire a deadline, so that it wakes once for several.
SLACK_SECONDS = 0.05


def _native(name: str) -> Any:
    """`_thread.<name>` as the operating system provides it, even under gevent."""
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        return monkey.get_original("_thread", name)
    import _thread

    return getattr(_thread, name)


class Deadline:
    """The end of one attempt: how much time remains, and the sockets to cut when it passes.

    Use it as a context manager around the attempt; leaving it releases the sockets it holds.
    """

    def __init__(self, seconds: float, *, ends_with: Deadline | None = None):
        # `ends_with`: a deadline for part of an attempt, ending with the attempt's own and
        # naming its bound, that watches sockets which outlive the attempt (MQTT's).
        self.seconds = ends_with.seconds if ends_with is not None else seconds
        self.expires_at = ends_with.expires_at if ends_with is not None else time.monotonic() + seconds
        self._lock = _native("allocate_lock")()
        self._watched: list[Any] = []
        self._closed = False
        self.fired = False
        _watchdog().add(self)

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.expires_at

    def watch(self, sock: socket.socket) -> None:
        """Cut `sock` (a TCP socket, TLS or not) if it is still in use when the deadline passes."""
        watcher = _socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            if self._closed:
                watcher.close()
                return
            self._watched.append(watcher)
        if self.passed:
            self.expire()

    def expire(self) -> None:
        """Shut down every socket the attempt still holds (the watchdog calls this on time)."""
        with self._lock:
            if self._closed or not self._watched:
                return
            # Said before the sockets are cut: a reader woken by the cut must see it.
            self.fired = True
            for watcher in self._watched:
                try:
                    watcher.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # not connected (yet, or any more): nothing to cut

    def close(self) -> None:
        """The attempt is over: release the sockets; the watchdog will leave them alone."""
        with self._lock:
            self._closed = True
            watched, self._watched = self._watched, []
        for watcher in watched:
            watcher.close()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Watchdog:
    """One native thread that expires deadlines as they pass, earliest first."""

    def __init__(self) -> None:
        self._mutex = _native("allocate_lock")()
        # Released to wake the thread early (a deadline earlier than all others arrived);
        # held otherwise. Releasing it twice is a wake-up already pending.
        self._wakeup = _native("allocate_lock")()
        self._wakeup.acquire()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        _native("start_new_thread")(self._run, ())

    def add(self, deadline: Deadline) -> None:
        with self._mutex:
            heapq.heappush(self._heap, (deadline.expires_at, next(self._order), deadline))
            earliest = self._heap[0][2] is deadline
        if earliest:
            try:
                self._wakeup.release()
            except RuntimeError:
                pass

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._mutex:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                wait = self._heap[0][0] - now if self._heap else -1
            for deadline in due:
                deadline.expire()
            # Deadlines arrive one per attempt and, all of one length, expire in that order:
            # waking for each on its own woke this thread (and took the GIL) once per attempt.
            # Expired in batches instead, a deadline fires at most SLACK_SECONDS late.
            self._wakeup.acquire(True, max(wait, SLACK_SECONDS) if wait >= 0 else -1)


class _Process:
    """What this process shares between attempts: the watchdog and the helper-thread count.

    Kept per process id: a forked child has neither the parent's threads nor a right to its
    locks, and starts afresh.
    """

    def __init__(self) -> None:
        self.lock = _native("allocate_lock")()
        self.pending_calls = 0
        self.watchdog = _Watchdog()


_processes: dict[int, _Process] = {}
_processes_lock = _native("allocate_lock")()


def _process() -> _Process:
    pid = os.getpid()
    process = _processes.get(pid)
    if process is None:
        with _processes_lock:
            process = _processes.get(pid)
            if process is None:
                process = _processes[pid] = _Process()
    return process


def _watchdog() -> _Watchdog:
    """The process's watchdog, started on first use."""
    return _process().watchdog


def run_within(deadline: Deadline, what: str, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a helper thread, waited for until the deadline at most.

    For the blocking calls no socket can bound (name resolution). TimeoutError when the
    deadline passes first; the helper thread then finishes on its own and its result is lost.
    """
    process = _process()
    with process.lock:
        if process.pending_calls >= MAX_PENDING_CALLS:
            raise TimeoutError(f"{MAX_PENDING_CALLS} calls to {what} are still waiting for an answer")
        process.pending_calls += 1
    done = _native("allocate_lock")()
    done.acquire()
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function(*args)
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome["error"] = exc
        finally:
            with process.lock:
                process.pending_calls -= 1
            done.release()

    _native("start_new_thread")(call, ())
    if not done.acquire(True, deadline.remaining()):
        raise TimeoutError(f"{what} did not answer within {deadline.seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
