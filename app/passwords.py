"""Password hashing off the web process's event loop, a few at a time.

A scrypt check takes tens of milliseconds of CPU. Under gunicorn's gevent worker every
client of a process shares one native thread, so a check run inline would stall every other
request and WebSocket for that long, and sixteen at once for most of a second. Here each
check runs in a small pool of native threads (hashlib's scrypt releases the GIL while it
works), at most `size` at a time; the rest wait their turn without blocking anything. Without
gevent (tests, the CLI, a threaded server) the pool is a plain thread pool of the same size.

Callers check a hash outside any database transaction: a connection is never held while the
CPU works.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from werkzeug.security import check_password_hash, generate_password_hash

from app.blocking import gevent_patched

# A hash to check against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class PasswordHasher:
    """Makes and checks password hashes in a bounded pool of native threads."""

    def __init__(self, size: int = 2):
        self.size = size
        self._pool: Any = None
        self._lock = threading.Lock()

    def _executor(self) -> Callable[..., Any]:
        with self._lock:
            if self._pool is None:
                if gevent_patched():
                    from gevent.threadpool import ThreadPool

                    self._pool = ThreadPool(self.size)
                else:
                    self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="pulse-passwords")
            pool = self._pool
        if isinstance(pool, ThreadPoolExecutor):
            return lambda function, *args: pool.submit(function, *args).result()
        return lambda function, *args: pool.apply(function, args)

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in the pool; the caller waits (a greenlet yields meanwhile)."""
        return self._executor()(function, *args)

    def hash(self, password: str) -> str:
        """A salted scrypt hash (werkzeug's default)."""
        return self.run(generate_password_hash, password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches `password_hash`; with no hash (an unknown user), False
        after the same work as a real check."""
        if password_hash is None:
            self.run(check_password_hash, _DUMMY_HASH, password)
            return False
        return self.run(check_password_hash, password_hash, password)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if isinstance(pool, ThreadPoolExecutor):
            pool.shutdown(wait=False)
        elif pool is not None:
            pool.kill()
