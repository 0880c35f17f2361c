"""Tenant names (DESIGN §6) and which tenants exist.

A tenant id travels in tokens, in the row-level-security setting `app.tenant_id` and in Redis
keys, so it is held to one narrow rule everywhere: `create-user` refuses other names and a
token naming anything else is not genuine. `*` (Pulse's own cross-tenant scope) is therefore
never a tenant.
"""

from __future__ import annotations

import re
import threading
import time

from sqlalchemy import select

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
TENANT_NAME_RULE = "1 to 64 characters: letters, digits, '_', '.' and '-', starting with a letter or digit"


def is_tenant_name(value: object) -> bool:
    """Whether `value` is a tenant name by DESIGN §6's rule."""
    return isinstance(value, str) and TENANT_NAME.match(value) is not None


class KnownTenants:
    """Which tenants exist, as the database says, remembered for `ttl_seconds`.

    Only existence is remembered (tenants are never deleted): an unknown tenant is asked
    again every time, so a tenant made a moment ago by `create-user` is known at once.
    """

    def __init__(self, db, ttl_seconds: float = 60.0):
        self._db = db
        self._ttl = ttl_seconds
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def exists(self, tenant_id: str) -> bool:
        if not is_tenant_name(tenant_id):
            return False
        now = time.monotonic()
        with self._lock:
            if self._seen.get(tenant_id, 0.0) > now:
                return True
        from app.models import Tenant

        # The tenants table has no tenant column: the tenant's own scope reads it.
        with self._db.session(tenant_id) as session:
            found = session.scalar(select(Tenant.tenant_id).where(Tenant.tenant_id == tenant_id)) is not None
        if found:
            with self._lock:
                self._seen[tenant_id] = now + self._ttl
        return found
