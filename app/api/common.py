"""What every API view shares: the caller, tenant sessions, request bodies and queries, get-or-404."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from flask import g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from app.auth import Principal
from app.models import Alert, Device, NotificationChannel, NotificationJob, RoutingRule, Silence
from app.problems import Problem, field_problem, not_found, validation_problem
from app.web import pulse

Model = TypeVar("Model", bound=BaseModel)


def principal() -> Principal:
    return g.principal


def tenant_id() -> str:
    return g.principal.tenant_id


@contextmanager
def tenant_session() -> Iterator[Session]:
    """A unit of work scoped to the caller's tenant."""
    with pulse().db.session(tenant_id()) as session:
        yield session


MAX_DEPTH = 32


def _not_json_constant(name: str):
    # NaN and Infinity are Python's extensions, not JSON (RFC 8259); PostgreSQL refuses them.
    raise ValueError(f"{name} is not a JSON value")


def _check_values(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse what no column can store: NUL characters, lone surrogates, absurd nesting."""
    if depth > MAX_DEPTH:
        raise Problem(422, f"the body is nested deeper than {MAX_DEPTH} levels", errors=[{"field": path, "message": "too deep"}])
    if isinstance(value, str):
        if "\x00" in value:
            raise Problem(422, f"invalid request: {path or 'body'}: NUL characters are not allowed", errors=[{"field": path, "message": "contains NUL"}])
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Problem(422, f"invalid request: {path or 'body'}: not valid Unicode", errors=[{"field": path, "message": "invalid Unicode"}]) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, path, depth + 1)
            _check_values(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}.{index}" if path else str(index), depth + 1)


def parse_body(model: type[Model]) -> Model:
    """The request's JSON body validated by `model`: 400 if not JSON, 422 if not valid."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw or b"null", parse_constant=_not_json_constant)
    except (ValueError, RecursionError):
        raise Problem(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(422, "the request body must be a JSON object", errors=[{"field": "", "message": "expected an object"}])
    _check_values(data)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def parse_query(model: type[Model]) -> Model:
    """The request's query parameters validated by `model` (only the first value of a repeated one)."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_problem(exc) from None


def check_channels(session: Session, channel_ids: list[int] | None, field: str) -> None:
    """Every channel named must be one of the caller's own; anything else is a bad body (422)."""
    if not channel_ids:
        return
    found = set(
        session.scalars(
            select(NotificationChannel.channel_id).where(
                NotificationChannel.tenant_id == tenant_id(), NotificationChannel.channel_id.in_(
                    # An id no BIGINT can hold names no channel (and must not reach the database).
                    {channel_id for channel_id in channel_ids if 0 < channel_id < 2**63}
                )
            )
        )
    )
    for index, channel_id in enumerate(channel_ids):
        if channel_id not in found:
            raise Problem(
                422,
                f"invalid request: {field}.{index}: no channel {channel_id} in this tenant",
                errors=[{"field": f"{field}.{index}", "message": f"no channel {channel_id} in this tenant"}],
            )


def path_id(raw: str, what: str) -> int:
    """A numeric id from the URL; anything else names no resource (404, like an unknown id)."""
    # isdigit() alone takes superscripts and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise not_found(what)
    return int(raw)


# What a 404 calls each resource the URL can name.
RESOURCE_NAMES: dict[type, str] = {
    Alert: "alert",
    Device: "device",
    NotificationChannel: "channel",
    RoutingRule: "routing rule",
    NotificationJob: "delivery",
    Silence: "silence",
}
Row = TypeVar("Row")


def get_or_404(session: Session, model: type[Row], raw_id: str) -> Row:
    """The caller's tenant's `model` row that the URL's id names; 404 if there is none.

    Another tenant's row answers 404 too, never 403, and so does a deleted one (a channel's
    row outlives its deletion for its history). Numeric ids are checked before the
    database is asked (`abc` names nothing).
    """
    what = RESOURCE_NAMES[model]
    key_columns = inspect(model).primary_key
    [id_column] = [column for column in key_columns if column.key != "tenant_id"]
    ident: Any = path_id(raw_id, what) if id_column.type.python_type is int else raw_id
    key = tuple(tenant_id() if column.key == "tenant_id" else ident for column in key_columns)
    row = session.get(model, key if len(key) > 1 else ident)
    if row is None or row.tenant_id != tenant_id() or getattr(row, "deleted_at", None) is not None:
        raise not_found(what)
    return row


def patch_changes(body, not_null: tuple[str, ...]) -> dict:
    """The fields a PATCH body sets, by name; null for a field that cannot be null is a 422."""
    changes = body.model_dump(include=body.model_fields_set)
    for name in not_null:
        if name in changes and changes[name] is None:
            raise field_problem(name, "may not be null")
    return changes
