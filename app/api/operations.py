"""What each API view takes and answers, declared once on the view.

`@operation(...)` names the request body and query models (the view receives them parsed
and validated as `body` and `query`), the response model of each success status, and the
error statuses the view adds to the ones every operation may answer. The view returns a
response model (or `(model, status)`), answered as JSON. The OpenAPI description
(`app.api.openapi`) is generated from these declarations and the registered routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from app.api.common import parse_body, parse_query


@dataclass(frozen=True)
class Operation:
    """One view's contract: what it reads and what it may answer."""

    summary: str
    responses: Mapping[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = field(default=())


def operation(
    response: type[BaseModel] | None,
    status: int = 200,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    also: Mapping[int, type[BaseModel] | None] | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[Callable], Callable]:
    """Declare a view's contract: `response` answered with `status`, `also` other successes."""

    def decorate(view: Callable) -> Callable:
        declared = Operation(
            summary=(view.__doc__ or view.__name__).strip().splitlines()[0],
            responses={status: response, **(also or {})},
            body=body,
            query=query,
            errors=errors,
        )

        @wraps(view)
        def answer(*args: Any, **kwargs: Any) -> Any:
            if body is not None:
                kwargs["body"] = parse_body(body)
            if query is not None:
                kwargs["query"] = parse_query(query)
            result = view(*args, **kwargs)
            payload, code = result if isinstance(result, tuple) else (result, status)
            if isinstance(payload, BaseModel):
                return payload.model_dump(mode="json"), code
            return result

        answer.operation = declared  # type: ignore[attr-defined]
        return answer

    return decorate
