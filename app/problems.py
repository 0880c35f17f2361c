"""RFC 9457 problem details: every error Pulse answers, in one shape."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_TYPES = "https://pulse.example/problems/"


class Problem(Exception):
    """An error answered as `application/problem+json`."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, errors: list[dict] | None = None, headers=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        slug = self.title.lower().replace(" ", "-")
        body: dict[str, Any] = {"type": PROBLEM_TYPES + slug, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class FieldError(BaseModel):
    field: str
    message: str


class ProblemDetails(BaseModel):
    """The body of every error answer, as `Problem.body()` writes it: `errors` names a 422's bad fields."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} not found")


def validation_problem(exc: ValidationError, prefix: tuple = ()) -> Problem:
    """A 422 naming each bad field by its path (`config.smtp.port`)."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in (*prefix, *error["loc"]))
        errors.append({"field": path, "message": error["msg"]})
    summary = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5])
    return Problem(422, f"invalid request: {summary}", errors=errors)


def field_problem(field: str, message: str) -> Problem:
    """A 422 about one field."""
    return Problem(422, f"invalid request: {field}: {message}", errors=[{"field": field, "message": message}])


def problem_response(problem: Problem) -> Response:
    response = Response(json.dumps(problem.body()), status=problem.status, mimetype="application/problem+json")
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    """Answer every error, expected or not, as problem+json; never a stack trace."""

    @app.before_request
    def _refuse_nul_characters():
        # No identifier or filter contains NUL, and PostgreSQL cannot even compare one.
        if "\x00" in request.path or any("\x00" in value for value in request.args.values()):
            raise Problem(400, "NUL characters are not allowed in the path or query")

    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem_response(problem)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return problem_response(validation_problem(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        detail = {
            400: "the request body is not valid JSON",
            404: "no such resource",
            405: "method not allowed on this resource",
            413: "the request body is larger than 1 MiB",
        }.get(status, exc.description or HTTPStatus(status).phrase)
        response = problem_response(Problem(status, detail))
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc: Exception):
        # An outage, not a bug: say so, and when to come back.
        log.error("database unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
        return problem_response(Problem(503, "the database is unavailable; try again shortly", headers={"Retry-After": "5"}))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem_response(Problem(500, "an internal error occurred; it has been logged"))
