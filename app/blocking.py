"""Run a blocking call from the web process without stalling its other clients.

Under gevent (the web process's worker class) a blocking call that is not gevent-aware, such
as pysnmp's asyncio loop, runs in gevent's pool of native threads; elsewhere it runs inline.
"""

from __future__ import annotations

from typing import Any, Callable


def gevent_patched() -> bool:
    """Whether this process runs under gevent (its threading monkey-patched)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")


def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
    """`function(*args)`, in a native thread when the process is gevent-patched."""
    if gevent_patched():
        import gevent

        return gevent.get_hub().threadpool.apply(function, args)
    return function(*args)
