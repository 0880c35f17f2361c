"""The SNMP engines Pulse sends traps with: one event loop and a few engines per thread.

pysnmp 7 is asyncio-only, and an `SnmpEngine` is slow to build and bound to the event loop
it was made on. Each OS thread (a Celery worker thread, or the native thread the web process
runs blocking sends in) therefore keeps one event loop and up to `ENGINES_PER_THREAD` engines,
one per SNMP engine id, most recently used last. Under gevent, send from a native thread
(gevent's threadpool), never from a greenlet: asyncio allows one running loop per OS thread,
and greenlets share theirs.

Every engine reports boots 1 and the seconds since `ENGINE_TIME_EPOCH` as its engine time, so
that all the threads, processes and hosts sending as one engine id agree (see `snmp`).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict

# pysnmp and cryptography import these on first use. Imported here, once, they are never
# imported by the first sends of several threads at the same time: under gevent
# monkey-patching the import lock is a gevent lock, and such concurrent imports deadlock.
import cryptography.hazmat.backends.openssl  # noqa: F401
import pysnmp.cache  # noqa: F401
import pysnmp.smi.exval  # noqa: F401
import pysnmp.smi.mibs  # noqa: F401
import pysnmp.smi.mibs.instances  # noqa: F401
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine
from pysnmp.proto.rfc1902 import OctetString
from pysnmp.proto.rfc3412 import MsgAndPduDispatcher
from pysnmp.smi.builder import MibBuilder
from pysnmp.smi.instrum import MibInstrumController

# 2024-01-01T00:00:00Z. Engine time counts from here; it stays below its RFC 3414 maximum
# (2^31 - 1 seconds) until 2092.
ENGINE_TIME_EPOCH = 1704067200

# Engines kept per thread: each holds about 1 MB of MIB data.
ENGINES_PER_THREAD = 16


class _ThreadResources:
    """One thread's event loop and its engines, most recently used last."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.engines: OrderedDict[str, SnmpEngine] = OrderedDict()
        # Closed when the thread ends and its thread-local storage is released. Not at exit:
        # then the finalizer runs in the main thread, and another thread's loop must not run
        # there (under gevent its selector belongs to that thread's hub).
        finalizer = weakref.finalize(self, _close, self.loop, self.engines, threading.get_ident())
        finalizer.atexit = False


def _close(loop: asyncio.AbstractEventLoop, engines: OrderedDict[str, SnmpEngine], owner: int) -> None:
    if threading.get_ident() != owner or loop.is_closed() or loop.is_running():
        return
    for engine in engines.values():
        engine.close_dispatcher()
    engines.clear()
    if not _loop_running_in_this_thread():
        # One more turn of the loop lets the cancelled timer tasks and closed sockets finish.
        loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def _loop_running_in_this_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_local = threading.local()


def thread_resources() -> _ThreadResources:
    """This thread's loop and engines, made on first use."""
    resources = getattr(_local, "resources", None)
    if resources is None:
        resources = _local.resources = _ThreadResources()
    return resources


class _BundledMibBuilder(MibBuilder):
    """The MIBs pysnmp ships, without the optional `pysnmp_mibs` package."""

    # MibBuilder tries to import `pysnmp_mibs` for every engine. Pulse does not install it, and
    # under gevent monkey-patching the first sends of several threads, each making an engine,
    # deadlock on the import lock that attempt takes.
    DEFAULT_MISC_MIBS = ""


def engine_for(engine_id: str) -> SnmpEngine:
    """This thread's engine for an engine id; call inside the thread's running loop."""
    engines = thread_resources().engines
    engine = engines.get(engine_id)
    if engine is not None:
        engines.move_to_end(engine_id)
        return engine
    dispatcher = MsgAndPduDispatcher(MibInstrumController(_BundledMibBuilder()))
    engine = SnmpEngine(snmpEngineID=OctetString(hexValue=engine_id), msgAndPduDsp=dispatcher)
    boots, engine_time = engine.get_mib_builder().import_symbols(
        "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime"
    )
    boots.syntax = boots.syntax.clone(1)
    # pysnmp reports snmpEngineTime as now minus this value (its engine start, by default).
    engine_time.syntax = engine_time.syntax.clone(ENGINE_TIME_EPOCH)
    engines[engine_id] = engine
    while len(engines) > ENGINES_PER_THREAD:
        _, evicted = engines.popitem(last=False)
        evicted.close_dispatcher()
    return engine
