"""Rule matching, case by case: every filter the rule sets must hold (app.routing, no I/O)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.routing import AlertFacts, effective_tags, match_rules, rule_matches


def rule(**overrides):
    fields = dict(
        rule_id=1,
        channel_id=10,
        min_severity=None,
        alert_type=None,
        device_tag_key=None,
        device_tag_val=None,
        site_ids=None,
        device_prefixes=None,
        deliver_on=["OPEN"],
        throttle_minutes=0,
        priority=100,
        is_enabled=True,
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


ALERT = AlertFacts(severity=3, alert_type="overheat", device_id="pump-17", site_id="plant-a", tags={"zone": "north", "tier": 2})

CASES = [
    ("no filters match everything", rule(), "OPEN", True, True),
    ("severity at the minimum", rule(min_severity=3), "OPEN", True, True),
    ("severity below the minimum", rule(min_severity=4), "OPEN", True, False),
    ("min_severity 0 is a filter that always holds", rule(min_severity=0), "OPEN", True, True),
    ("same alert type", rule(alert_type="overheat"), "OPEN", True, True),
    ("other alert type", rule(alert_type="offline"), "OPEN", True, False),
    ("tag key and value", rule(device_tag_key="zone", device_tag_val="north"), "OPEN", True, True),
    ("tag value differs", rule(device_tag_key="zone", device_tag_val="south"), "OPEN", True, False),
    ("tag missing", rule(device_tag_key="owner", device_tag_val="ops"), "OPEN", True, False),
    ("tag key alone needs the tag present", rule(device_tag_key="zone"), "OPEN", True, True),
    ("tag key alone, tag absent", rule(device_tag_key="owner"), "OPEN", True, False),
    ("numeric tag compared as text", rule(device_tag_key="tier", device_tag_val="2"), "OPEN", True, True),
    ("site listed", rule(site_ids=["plant-b", "plant-a"]), "OPEN", True, True),
    ("site not listed", rule(site_ids=["plant-b"]), "OPEN", True, False),
    ("empty site list does not filter", rule(site_ids=[]), "OPEN", True, True),
    ("device prefix", rule(device_prefixes=["valve-", "pump-"]), "OPEN", True, True),
    ("no device prefix matches", rule(device_prefixes=["valve-"]), "OPEN", True, False),
    ("every filter holds", rule(min_severity=2, alert_type="overheat", device_tag_key="zone", device_tag_val="north", site_ids=["plant-a"], device_prefixes=["pump"]), "OPEN", True, True),
    ("one filter of many fails", rule(min_severity=2, alert_type="overheat", site_ids=["plant-z"]), "OPEN", True, False),
    ("deliver_on defaults to OPEN only", rule(), "ACKNOWLEDGED", True, False),
    ("deliver_on lists the event", rule(deliver_on=["OPEN", "CLOSED"]), "CLOSED", True, True),
    ("deliver_on without the event", rule(deliver_on=["OPEN", "CLOSED"]), "ACKNOWLEDGED", True, False),
    ("disabled rule", rule(is_enabled=False), "OPEN", True, False),
    ("disabled channel", rule(), "OPEN", False, False),
]


@pytest.mark.parametrize("case, candidate, event, channel_enabled, expected", CASES, ids=[c[0] for c in CASES])
def test_rule_matching(case, candidate, event, channel_enabled, expected):
    assert rule_matches(candidate, ALERT, event, channel_enabled) is expected


def test_alert_device_tags_override_the_device_tags():
    tags = effective_tags({"zone": "north", "owner": "ops"}, {"device_tags": {"zone": "south"}, "other": 1})
    assert tags == {"zone": "south", "owner": "ops"}


def test_details_without_device_tags_leave_the_device_tags():
    assert effective_tags({"zone": "north"}, {"device_tags": "not-a-mapping"}) == {"zone": "north"}


def test_one_match_per_channel_the_highest_priority_rule_wins():
    rules = [
        rule(rule_id=1, channel_id=10, priority=50),
        rule(rule_id=2, channel_id=10, priority=10),
        rule(rule_id=3, channel_id=20, priority=10),
    ]
    matched = match_rules(rules, ALERT, "OPEN", {10, 20})
    assert sorted((r.channel_id, r.rule_id) for r in matched) == [(10, 2), (20, 3)]


def test_a_disabled_higher_priority_rule_leaves_the_channel_to_the_next_rule():
    rules = [rule(rule_id=1, channel_id=10, priority=1, is_enabled=False), rule(rule_id=2, channel_id=10, priority=5)]
    assert [r.rule_id for r in match_rules(rules, ALERT, "OPEN", {10})] == [2]


def test_rules_of_disabled_channels_match_nothing():
    assert match_rules([rule(channel_id=10)], ALERT, "OPEN", set()) == []
