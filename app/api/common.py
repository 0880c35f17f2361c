"""What every API view shares: the caller, request bodies, tenant sessions, pagination."""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from flask import g, request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select
from sqlalchemy.orm import Session

from app.auth import Principal
from app.problems import Problem, validation_problem
from app.web import pulse

Model = TypeVar("Model", bound=BaseModel)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


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


def query_int(name: str, default: int | None = None, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """An integer query parameter; 422 if it is not one or out of range."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, f"query parameter {name} must be an integer", errors=[{"field": name, "message": "not an integer"}]) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise Problem(422, f"query parameter {name} must be between {minimum} and {maximum}", errors=[{"field": name, "message": "out of range"}])
    return value


def path_id(raw: str, what: str) -> int:
    """A numeric id from the URL; anything else names no resource (404, like an unknown id)."""
    if not raw.isdigit() or len(raw) > 18:
        raise Problem(404, f"{what} not found")
    return int(raw)


def invalid_cursor() -> Problem:
    """The 422 for a cursor this API did not issue."""
    return Problem(422, "cursor is not one this API issued", errors=[{"field": "cursor", "message": "invalid"}])


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> list[Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise invalid_cursor() from None
    if not isinstance(value, list):
        raise invalid_cursor()
    return value


def paginate(session: Session, stmt: Select, id_column, view) -> dict[str, Any]:
    """A page of `stmt`, newest first by an increasing integer id: `{items, next_cursor}`."""
    limit = query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = decode_cursor(request.args.get("cursor"))
    if cursor is not None:
        if len(cursor) != 1 or not isinstance(cursor[0], int):
            raise invalid_cursor()
        stmt = stmt.where(id_column < cursor[0])
    rows = session.scalars(stmt.order_by(id_column.desc()).limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = encode_cursor([getattr(items[-1], id_column.key)]) if len(rows) > limit else None
    return {"items": [view(row) for row in items], "next_cursor": next_cursor}
