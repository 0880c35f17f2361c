"""Templates a tenant writes and Pulse renders: a sandboxed, bounded subset of Jinja2.

A channel's template (the email subject and body today) is written by a tenant but rendered
inside Pulse, so it must not reach Python objects, and must not make Pulse build huge texts.
Jinja2's sandbox covers the first. For the second, templates are a deliberately small subset
of Jinja2: Jinja2 evaluates constant expressions such as `'a' * 10**9` or
`'a'|center(10**9)` while compiling, so the subset has no operator or filter that can grow a
string without bound, loops nest at most `MAX_LOOP_NESTING` deep, and rendering stops at
`RENDERED_MAX_CHARACTERS`.

`check_template()` runs when a channel is created or updated (a refused template is a 422
naming the field); `render()` runs at each send. Values print as themselves, with None as
nothing rather than the word "None"; the `json` filter prints plain JSON.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable, Mapping

from jinja2 import StrictUndefined, TemplateError, meta, nodes, pass_eval_context
from jinja2.filters import do_join
from jinja2.nodes import EvalContext
from jinja2.sandbox import SandboxedEnvironment

from app.payload import PAYLOAD_FIELDS

RENDERED_MAX_CHARACTERS = 1_000_000
MAX_LOOP_NESTING = 2
MAX_JSON_INDENT = 8

# Filters that cannot turn a small input into a huge output (`join` and `json` are bounded
# below; `wordwrap`, `indent`, `center`, `format` and `tojson`'s indent could, so they are left out).
ALLOWED_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "default",
        "dictsort",
        "filesizeformat",
        "first",
        "float",
        "int",
        "items",
        "join",
        "json",
        "last",
        "length",
        "list",
        "lower",
        "max",
        "min",
        "reverse",
        "round",
        "sort",
        "string",
        "striptags",
        "sum",
        "title",
        "trim",
        "truncate",
        "unique",
        "upper",
        "wordcount",
    }
)

# Everything else (calls, assignments, macros, includes, `*`, `**`, `%`) is refused.
ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.If,
    nodes.CondExpr,
    nodes.For,
    nodes.FilterBlock,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
)

_CONSTRUCT_NAMES = {
    nodes.Call: "a function or method call",
    nodes.Mul: "the * operator",
    nodes.Pow: "the ** operator",
    nodes.Mod: "the % operator",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.With: "{% with %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
}


class TemplateRefused(ValueError):
    """A template that does not compile or leaves the supported subset."""


class RenderFailed(ValueError):
    """A checked template that cannot be rendered for these values; the message says why."""


def _json(value: Any, indent: int | None = None) -> str:
    """Plain JSON for text (Jinja's `tojson` escapes `<`, `>` and `&` for HTML)."""
    if indent is not None:
        indent = max(0, min(int(indent), MAX_JSON_INDENT))
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str, indent=indent)


@pass_eval_context
def _join(eval_context: EvalContext, value: Any, separator: str = "", attribute: str | int | None = None) -> str:
    """Jinja's `join`, refusing a separator so long that the result would be huge."""
    items = list(value)
    if len(str(separator)) * len(items) > RENDERED_MAX_CHARACTERS:
        raise ValueError(f"join would produce more than {RENDERED_MAX_CHARACTERS} characters")
    return do_join(eval_context, items, separator, attribute)


def _text(value: Any) -> Any:
    """An absent value (None) prints as nothing rather than as the word "None"."""
    return "" if value is None else value


def _environment() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_text,
    )
    environment.filters["json"] = _json
    environment.filters["join"] = _join
    return environment


ENVIRONMENT = _environment()


def check_template(source: str, variables: Iterable[str] = PAYLOAD_FIELDS) -> None:
    """Parse, inspect and compile a template; TemplateRefused says what is wrong and where.

    `variables` are the names the template may use (by default the payload's fields).
    """
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateError as exc:
        raise TemplateRefused(_describe_template_error(exc)) from None
    # Checked before anything compiles it: compiling evaluates constant expressions.
    _check_nodes(tree, loop_depth=0)
    known = frozenset(variables)
    try:
        unknown = meta.find_undeclared_variables(tree) - known
        compiled_template(source)
    except TemplateError as exc:
        raise TemplateRefused(_describe_template_error(exc)) from None
    if unknown:
        raise TemplateRefused(
            f"unknown variable(s) {', '.join(sorted(unknown))}; the payload fields are {', '.join(sorted(known))}"
        )


def _check_nodes(node: nodes.Node, loop_depth: int) -> None:
    if not isinstance(node, ALLOWED_NODES):
        construct = _CONSTRUCT_NAMES.get(type(node), f"{type(node).__name__!r}")
        raise TemplateRefused(f"{construct} is not supported in Pulse templates (line {node.lineno})")
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        raise TemplateRefused(
            f"filter {node.name!r} is not supported in Pulse templates (line {node.lineno}); "
            f"use one of {', '.join(sorted(ALLOWED_FILTERS))}"
        )
    if isinstance(node, nodes.For):
        loop_depth += 1
        if loop_depth > MAX_LOOP_NESTING:
            raise TemplateRefused(f"loops may be nested at most {MAX_LOOP_NESTING} deep (line {node.lineno})")
    for child in node.iter_child_nodes():
        _check_nodes(child, loop_depth)


def _describe_template_error(exc: TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    return f"template does not compile: {exc.message}" + (f" (line {line})" if line else "")


@lru_cache(maxsize=512)
def compiled_template(source: str):
    """The compiled template of a source; channels reuse the same few, so keep them."""
    return ENVIRONMENT.from_string(source)


def render(source: str, values: Mapping[str, Any]) -> str:
    """Render a checked template over `values`; RenderFailed says why it cannot be."""
    pieces: list[str] = []
    size = 0
    try:
        # Streamed so that a loop over a large value stops at the limit, not after it.
        for piece in compiled_template(source).generate(dict(values)):
            size += len(piece)
            if size > RENDERED_MAX_CHARACTERS:
                raise RenderFailed(f"renders more than {RENDERED_MAX_CHARACTERS} characters")
            pieces.append(piece)
    except RenderFailed:
        raise
    except TemplateError as exc:
        raise RenderFailed(f"cannot be rendered for this alert: {exc.message}") from None
    except Exception as exc:
        # Whatever a template raises (ZeroDivisionError, TypeError...) is the template's fault.
        raise RenderFailed(f"cannot be rendered for this alert: {type(exc).__name__}: {exc}") from None
    return "".join(pieces)
