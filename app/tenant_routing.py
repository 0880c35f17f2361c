"""A tenant's routing (rules, enabled channels, silences), loaded once and kept until it changes.

Dispatching an alert needs every rule of its tenant; loading them per alert costs a query
and an ORM object per rule (tens of milliseconds at 10,000 rules). Instead each process keeps
a `Routing` per tenant, tagged with the tenant's `routing_version`, which the database itself
bumps on every insert, update and delete of the tenant's rules, channels and silences
(triggers of migration 0005: no code path can forget to). Each alert reads that one integer
and reloads only when it moved, so a change is seen by the very next alert, in every process.

The cached rules and silences are ORM objects detached from the session that loaded them:
read-only snapshots whose column attributes are all loaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from app.db import Work, run
from app.models import NotificationChannel, RoutingRule, Silence, Tenant
from app.routing import Routing

# Tenants whose routing one process keeps; the least recently used beyond this are dropped.
CACHED_TENANTS = 4096

_VERSION = select(Tenant.routing_version).where(Tenant.tenant_id == bindparam("p_tenant_id"))


def load(session: Session, tenant_id: str, version: int, now: datetime) -> Routing:
    """The tenant's routing as the session sees it now."""
    rows = session.execute(
        select(RoutingRule, NotificationChannel.is_enabled)
        .join(NotificationChannel, NotificationChannel.channel_id == RoutingRule.channel_id)
        # A deleted channel's rules are deleted with it; this keeps any straggler out too.
        .where(RoutingRule.tenant_id == tenant_id, NotificationChannel.deleted_at.is_(None))
    ).all()
    # A silence over by now is over for good; one created later changes the version.
    silences = list(
        session.scalars(select(Silence).where(Silence.tenant_id == tenant_id, or_(Silence.ends_at.is_(None), Silence.ends_at > now)))
    )
    rules = [rule for rule, _ in rows]
    for obj in (*rules, *silences):
        session.expunge(obj)
    enabled = {rule.channel_id for rule, channel_enabled in rows if channel_enabled}
    return Routing.of(version, rules, enabled, silences)


class RoutingCache:
    """Each tenant's `Routing` in this process, reloaded when its version moves."""

    def __init__(self, size: int = CACHED_TENANTS):
        self._size = size
        self._entries: OrderedDict[tuple[str, str], Routing] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session | Work, tenant_id: str, now: datetime, version: int | None = None) -> Routing:
        """The tenant's routing as of `version` (read here when not given).

        In a `Work` (the driver-level unit of work of ingest), a stale entry is reloaded in a
        session of its own: the version it loads is at least the one this transaction read.
        """
        if version is None:
            version = run(session, _VERSION, tenant_id=tenant_id).scalar()
        if version is None:  # no such tenant: nothing to route, nothing to keep
            return Routing.of(-1, (), (), ())
        # One process may talk to several databases (tests do): the key names the database.
        database = session.database if isinstance(session, Work) else session.info.get("database")
        key = (database.key if database else session.get_bind().url.render_as_string(hide_password=True), tenant_id)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and cached.version == version:
                self._entries.move_to_end(key)
                return cached
        if isinstance(session, Work):
            with database.session(tenant_id) as own:
                routing = load(own, tenant_id, run(own, _VERSION, tenant_id=tenant_id).scalar(), now)
        else:
            routing = load(session, tenant_id, version, now)
        with self._lock:
            self._entries[key] = routing
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return routing


ROUTING = RoutingCache()
