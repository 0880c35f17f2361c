"""A tenant's routing is kept between alerts and never goes stale (app/tenant_routing.py).

The database bumps `tenants.routing_version` on every write to a tenant's rules, channels and
silences; each alert reads it and reloads the routing when it moved. The alert-type index
decides only the rules an alert can match: the jobs it creates are those of deciding them all.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.models import Tenant
from app.routing import JOB_OUTCOMES, AlertFacts, Routing, decide
from tests.support import create_channel, create_rule, post_alert


def version(app, tenant) -> int:
    with app.extensions["pulse"].db.session(tenant.tenant_id) as session:
        return session.scalar(select(Tenant.routing_version).where(Tenant.tenant_id == tenant.tenant_id))


def test_every_routing_write_moves_the_version_and_the_next_alert_sees_it(app, client, tenant, other_tenant, receiver):
    seen = [version(app, tenant)]

    def moved() -> bool:
        seen.append(version(app, tenant))
        return seen[-1] > seen[-2]

    channel = create_channel(client, tenant, "webhook", {"url": receiver.url("/first")})
    assert moved()
    assert post_alert(client, tenant, device_id="d-1")["jobs_queued"] == 0
    rule = create_rule(client, tenant, channel["channel_id"])
    assert moved()
    assert post_alert(client, tenant, device_id="d-2")["jobs_queued"] == 1
    assert client.patch(f"/api/v2/routing-rules/{rule['rule_id']}", json={"alert_type": "other"}, headers=tenant.admin).status_code == 200
    assert moved()
    assert post_alert(client, tenant, device_id="d-3")["jobs_queued"] == 0
    assert client.patch(f"/api/v2/routing-rules/{rule['rule_id']}", json={"alert_type": None}, headers=tenant.admin).status_code == 200
    assert moved()
    assert client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"is_enabled": False}, headers=tenant.admin).status_code == 200
    assert moved()
    assert post_alert(client, tenant, device_id="d-4")["jobs_queued"] == 0
    assert client.patch(f"/api/v2/channels/{channel['channel_id']}", json={"is_enabled": True}, headers=tenant.admin).status_code == 200
    silence = client.post(
        "/api/v2/silences", json={"name": "all", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"}, headers=tenant.admin
    )
    assert silence.status_code == 201, silence.get_json()
    assert moved()
    assert post_alert(client, tenant, device_id="d-5")["jobs_queued"] == 0
    assert client.delete(f"/api/v2/silences/{silence.get_json()['silence_id']}", headers=tenant.admin).status_code == 204
    assert moved()
    assert post_alert(client, tenant, device_id="d-6")["jobs_queued"] == 1
    assert client.delete(f"/api/v2/routing-rules/{rule['rule_id']}", headers=tenant.admin).status_code == 204
    assert moved()
    assert post_alert(client, tenant, device_id="d-7")["jobs_queued"] == 0
    # Another tenant's writes are its own.
    before = version(app, tenant)
    create_channel(client, other_tenant, "webhook", {"url": receiver.url("/other")})
    assert version(app, tenant) == before


def _rule(rule_id: int, rng: random.Random) -> SimpleNamespace:
    return SimpleNamespace(
        rule_id=rule_id,
        channel_id=rng.randint(1, 8),
        priority=rng.randint(1, 5),
        is_enabled=rng.random() > 0.1,
        alert_type=rng.choice([None, "heat", "cold", "leak"]),
        min_severity=rng.choice([None, 2, 4]),
        device_tag_key=None,
        device_tag_val=None,
        site_ids=rng.choice([None, ["a"], ["a", "b"]]),
        device_prefixes=rng.choice([None, ["pump-"]]),
        deliver_on=rng.choice([["OPEN"], ["OPEN", "CLOSED"]]),
    )


@pytest.mark.parametrize("seed", range(20))
def test_the_alert_type_index_creates_the_jobs_deciding_every_rule_would(seed):
    rng = random.Random(seed)
    rules = [_rule(number, rng) for number in range(1, 60)]
    routing = Routing.of(1, rules, enabled_channels={1, 2, 3, 4, 5, 6, 7}, silences=())
    def silenced(rule):
        return 9 if rule.channel_id == 3 else None

    def throttled(rule):
        return rule.channel_id == 4

    def jobs(candidates, alert, event):
        return [(d.rule.rule_id, d.outcome) for d in decide(candidates, alert, event, routing.enabled_channels, silenced, throttled) if d.outcome in JOB_OUTCOMES]

    for _ in range(30):
        alert = AlertFacts(rng.randint(1, 5), rng.choice(["heat", "cold", "leak", "smoke"]), rng.choice(["pump-1", "fan-2"]), rng.choice(["a", "b", None]), {})
        event = rng.choice(["OPEN", "CLOSED"])
        assert jobs(routing.candidates(alert.alert_type), alert, event) == jobs(routing.rules, alert, event)
