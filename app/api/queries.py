"""Query parameters of the lists, declared once: the same models validate a request and describe it.

A bad value is a 422 whose `detail` names the parameter; an empty value counts as not given
(`?device_id=` filters nothing), except for `status`, which must name a status.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticUseDefault

from app.problems import Problem
from app.status import AlertStatus, JobStatus

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _given(raw: Any) -> Any:
    if raw == "":
        raise PydanticUseDefault()
    return raw


def integer(minimum: int | None = None, maximum: int | None = None) -> Any:
    """An integer parameter within bounds."""

    def parse(raw: Any, info: ValidationInfo) -> int:
        name = info.field_name
        try:
            value = int(_given(raw))
        except ValueError:
            raise Problem(422, f"query parameter {name} must be an integer", errors=[{"field": name, "message": "not an integer"}]) from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise Problem(422, f"query parameter {name} must be between {minimum} and {maximum}", errors=[{"field": name, "message": "out of range"}])
        return value

    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(parse)]


def status_of(statuses: type[StrEnum]) -> Any:
    """A status filter, in any letter case."""

    choices = tuple(statuses)

    def parse(raw: Any) -> StrEnum:
        if not isinstance(raw, str) or raw.upper() not in choices:
            raise Problem(422, f"status must be one of {', '.join(choices)}", errors=[{"field": "status", "message": "unknown status"}])
        return statuses(raw.upper())

    return Annotated[statuses, BeforeValidator(parse)]


Text = Annotated[str, BeforeValidator(_given)]
Limit = integer(1, MAX_LIMIT)
Severity = integer(0, 5)
Id = integer(0)
AlertStatusFilter = status_of(AlertStatus)
JobStatusFilter = status_of(JobStatus)


class ListQuery(BaseModel):
    """What every list takes: how many items, and where the previous page ended."""

    model_config = ConfigDict(extra="ignore")

    limit: Limit = DEFAULT_LIMIT
    cursor: Text | None = Field(None, description="`next_cursor` of the previous page")


class AlertFilters(ListQuery):
    status: AlertStatusFilter | None = None
    device_id: Text | None = None
    min_severity: Severity | None = None


class DeliveryFilters(ListQuery):
    status: JobStatusFilter | None = Field(None, description="FAILED is the dead-letter queue")
    alert_id: Id | None = None
    channel_id: Id | None = None


class DeviceFilters(ListQuery):
    site_id: Text | None = None


def _boolean(raw: Any, info: ValidationInfo) -> bool:
    value = str(_given(raw)).lower()
    if value not in ("true", "false", "1", "0"):
        name = info.field_name
        raise Problem(422, f"query parameter {name} must be true or false", errors=[{"field": name, "message": "not a boolean"}])
    return value in ("true", "1")


class SilenceFilters(ListQuery):
    active: Annotated[bool, BeforeValidator(_boolean)] | None = Field(None, description="true: only the silences in force now; false: only the others")
