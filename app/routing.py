"""Which routing rules an alert event matches (the seeds' semantics): plain functions, no I/O.

A rule matches when it and its channel are enabled, the event is in its `deliver_on`, and
every filter it sets holds: `min_severity`, `alert_type`, the device tag
`device_tag_key`=`device_tag_val`, `site_ids` and `device_prefixes`. A filter left null
(or an empty list) does not filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from app.status import Event


@dataclass(frozen=True)
class AlertFacts:
    """What rule matching reads of an alert event."""

    severity: int
    alert_type: str
    device_id: str
    site_id: str | None
    tags: Mapping[str, Any]


def effective_tags(device_tags: Mapping[str, Any] | None, details: Mapping[str, Any] | None) -> dict[str, Any]:
    """The device's tags merged with the alert's `details.device_tags`; the alert's win."""
    merged = dict(device_tags or {})
    alert_tags = (details or {}).get("device_tags")
    if isinstance(alert_tags, Mapping):
        merged.update(alert_tags)
    return merged


def rule_matches(rule: Any, alert: AlertFacts, event_type: str, channel_enabled: bool = True) -> bool:
    """True when `rule` selects this alert event. `rule` has the routing-rule attributes."""
    if not rule.is_enabled or not channel_enabled:
        return False
    if event_type not in (rule.deliver_on or [Event.OPEN]):
        return False
    if rule.min_severity is not None and alert.severity < rule.min_severity:
        return False
    if rule.alert_type and alert.alert_type != rule.alert_type:
        return False
    if rule.device_tag_key:
        if rule.device_tag_key not in alert.tags:
            return False
        if rule.device_tag_val is not None and str(alert.tags[rule.device_tag_key]) != rule.device_tag_val:
            return False
    if rule.site_ids and alert.site_id not in rule.site_ids:
        return False
    if rule.device_prefixes and not any(alert.device_id.startswith(p) for p in rule.device_prefixes):
        return False
    return True


def match_rules(
    rules: Iterable[Any],
    alert: AlertFacts,
    event_type: str,
    enabled_channels: Sequence[int] | set[int],
) -> list[Any]:
    """The matching rules, at most one per channel: the first by (priority, rule_id)."""
    chosen: dict[int, Any] = {}
    for rule in sorted(rules, key=lambda r: (r.priority, r.rule_id)):
        if rule.channel_id in chosen:
            continue
        if rule_matches(rule, alert, event_type, rule.channel_id in enabled_channels):
            chosen[rule.channel_id] = rule
    return list(chosen.values())
