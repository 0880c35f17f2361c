"""One keyset paginator for every list: newest first, each page resumed after the last key shown.

A list is ordered by a key (an id; a creation time and an id; a timestamp), newest first. A
page asks its source for one item more than it shows: if that one exists, `next_cursor`
names the last key shown, and the next page starts strictly below it. The cursor is the key
as JSON, base64url without padding; one this API did not issue is a 422.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable, Sequence, TypeVar

from pydantic import StrictInt, StrictStr, TypeAdapter, ValidationError
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.types import TypeDecorator

from app.api.queries import ListQuery
from app.problems import Problem
from app.schemas import UtcDatetime
from app.views import Page

Row = TypeVar("Row")
Key = tuple[Any, ...]
# The JSON type of each part of a key, by the column's Python type.
KEY_PARTS: dict[type, Any] = {int: StrictInt, str: StrictStr, datetime: UtcDatetime}


def invalid_cursor() -> Problem:
    """The 422 for a cursor this API did not issue."""
    return Problem(422, "cursor is not one this API issued", errors=[{"field": "cursor", "message": "invalid"}])


def encode_cursor(key: Key) -> str:
    parts = [part.isoformat() if isinstance(part, datetime) else part for part in key]
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@lru_cache
def _key_adapter(parts: tuple[type, ...]) -> TypeAdapter:
    return TypeAdapter(tuple[tuple(KEY_PARTS[part] for part in parts)])


def decode_cursor(raw: str | None, parts: tuple[type, ...]) -> Key | None:
    """The key a cursor names, each part of the given type; None for no cursor."""
    if not raw:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        key = _key_adapter(parts).validate_json(text, strict=True)
    except (ValueError, ValidationError):
        raise invalid_cursor() from None
    # No column holds a NUL, and PostgreSQL cannot even compare one.
    if any(isinstance(part, str) and "\x00" in part for part in key):
        raise invalid_cursor()
    return key


def keyset_page(
    fetch: Callable[[Key | None, int], Sequence[Row]],
    key_of: Callable[[Row], Key],
    parts: tuple[type, ...],
    view: Callable[[Row], Any],
    query: ListQuery,
) -> Page:
    """A page: `fetch(after, count)` gives up to `count` rows strictly below `after`, newest first."""
    after = decode_cursor(query.cursor, parts)
    rows = fetch(after, query.limit + 1)
    shown = rows[: query.limit]
    next_cursor = encode_cursor(key_of(shown[-1])) if len(rows) > query.limit else None
    return Page(items=[view(row) for row in shown], next_cursor=next_cursor)


def _python_type(column: InstrumentedAttribute) -> type:
    kind = column.type
    # A decorated type (UtcDateTime) holds its values as its implementation does.
    return (kind.impl if isinstance(kind, TypeDecorator) else kind).python_type


def paginate(
    session: Session,
    stmt: Select,
    columns: Sequence[InstrumentedAttribute],
    view: Callable[[Any], Any],
    query: ListQuery,
) -> Page:
    """A page of `stmt`'s rows (already scoped to the tenant), newest first by `columns`."""
    keys = list(columns)

    def fetch(after: Key | None, count: int) -> Sequence[Any]:
        page = stmt
        if after is not None:
            page = page.where(keys[0] < after[0] if len(keys) == 1 else tuple_(*keys) < tuple_(*after))
        return session.scalars(page.order_by(*(column.desc() for column in keys)).limit(count)).all()

    parts = tuple(_python_type(column) for column in keys)
    return keyset_page(fetch, lambda row: tuple(getattr(row, column.key) for column in keys), parts, view, query)
