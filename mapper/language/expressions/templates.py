"""Jinja templates: compiled once (located syntax errors, names checked), rendered in the sandbox.

A template that is exactly one `{{ expression }}` gives the expression's value with its type; any other
renders text. Data is never evaluated as template text: values are inserted, not re-parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined

from mapper.language import conversions
from mapper.language.expressions import template_errors
from mapper.language.expressions.errors import EvaluationError
from mapper.language.expressions.limits import MAX_OUTPUT, too_long
from mapper.language.expressions.references import Chain, template_chain, template_chains
from mapper.language.expressions.sandbox import NULL_IN_TEXT, TEXT, Sandbox

Render = Callable[[Mapping[str, Any]], Any]

_SINGLE = re.compile(r"\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|%\}|\{#).)*)\}\}", re.DOTALL)
_TAG = re.compile(r"\{\{|\{%|\{#")
_DICT_ATTRIBUTES = frozenset(dir(dict))  # Jinja reads `x.items` as the method, not the key


@dataclass(frozen=True)
class Template:
    """A compiled template. `render(scope)` returns a value (native) or text."""

    source: str
    native: bool
    render: Render
    references: tuple[Chain, ...]
    data_reads: tuple[Chain, ...] = ()  # the same, read on through `| from_json` (see references.py)


def is_template(source: str) -> bool:
    return bool(_TAG.search(source))


def compile_template(source: str, environment: Sandbox = TEXT) -> Template:
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        raise template_errors.locate(source, exc, environment) from None
    references = tuple(template_chains(tree))
    data_reads = tuple(template_chains(tree, through_json=True))
    template_errors.check_names(source, tree, environment)
    single = _SINGLE.fullmatch(source) if environment is TEXT else None
    if single and _is_expression(single.group("expr"), environment):
        expression = single.group("expr")
        return Template(source, True, _lazy(lambda: _native_renderer(environment, expression)), references, data_reads)
    # `{{ a, b }}` prints as a template but is no expression on its own: it renders as text
    holes = _holes(tree)
    return Template(source, False, _lazy(lambda: _text_renderer(environment, tree, holes)), references, data_reads)


def _is_expression(text: str, environment: Sandbox) -> bool:
    """What `compile_expression` checks before it generates code: one expression, nothing after it."""
    try:
        parser = Parser(environment, text, state="variable")
        parser.parse_expression()
        return bool(parser.stream.eos)
    except TemplateSyntaxError:
        return False


def _lazy(build: Callable[[], Render]) -> Render:
    """A renderer whose Python code Jinja generates on first use.

    Everything that can be wrong with a template is found when it is parsed and checked (`check_names`);
    generating its code costs ~0.3 ms a template, and `wlmap validate` runs as a pre-commit hook, where
    nothing renders. Building twice in a race is harmless.
    """
    built: list[Render] = []

    def render(scope: Mapping[str, Any]) -> Any:
        if not built:
            try:
                built.append(build())
            except Exception as exc:  # a check `check_names` lacks: still a located error, never a crash
                raise EvaluationError(f"the template cannot be compiled: {exc}") from None
        return built[0](scope)

    return render


def _native_renderer(environment: Sandbox, expression_source: str) -> Render:
    expression = environment.compile_expression(expression_source, undefined_to_none=False)
    compiled = expression._template  # what TemplateExpression wraps; called directly to skip a copy
    run_expression = compiled.root_render_func
    new_context = compiled.new_context

    def render_native(scope: Mapping[str, Any]) -> Any:
        try:
            context = new_context(scope)  # type: ignore[arg-type]  # any mapping works; no copy
            for _ in run_expression(context):
                pass
            value = context.vars["result"]
        except Exception as exc:
            raise _evaluation_error(exc) from None
        if isinstance(value, Undefined):
            try:
                value._fail_with_undefined_error()
            except Exception as exc:  # UndefinedError, or SecurityError for `''.__class__`
                raise _evaluation_error(exc) from None
        return _plain(value)

    return render_native


def _text_renderer(environment: Sandbox, tree: nodes.Template, holes: tuple[Chain | None, ...]) -> Render:
    template = environment.from_string(tree)
    run_template = template.root_render_func
    new_text_context = template.new_context

    def render_text(scope: Mapping[str, Any]) -> str:
        size = 0
        parts = []
        try:
            for chunk in run_template(new_text_context(scope)):  # type: ignore[arg-type]
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise too_long()
                parts.append(chunk)
        except EvaluationError as exc:
            raise _name_the_null(exc, holes, scope) from None
        except Exception as exc:
            raise _evaluation_error(exc) from None
        return "".join(parts)

    return render_text


def _holes(tree: nodes.Template) -> tuple[Chain | None, ...]:
    """The `{{ }}` of a text template in order: the chain each looks up, or None when it computes something."""
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return ()
    holes: list[Chain | None] = []
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            continue
        chain = template_chain(node, strict=True)
        holes.append(chain if chain and not _DICT_ATTRIBUTES.intersection(chain[1:]) else None)
    return tuple(holes)


def _name_the_null(exc: EvaluationError, holes: tuple[Chain | None, ...], scope: Mapping[str, Any]) -> Exception:
    """Jinja's finalize knows that a value is null, not which one: find the plain name that is, if it is sure."""
    if str(exc) != NULL_IN_TEXT:
        return exc
    for chain in holes:
        if chain is None:
            return exc  # a computed value before it could be the null one
        value: Any = scope
        for key in chain:
            value = value.get(key, Undefined) if isinstance(value, Mapping) else Undefined
        if value is None:
            name = ".".join(chain)
            return EvaluationError(
                f"`{name}` is empty (null), so it cannot be inserted into the text; "
                f"write `{{{{ {name} or '' }}}}` if empty is fine there"
            )
    return exc


def _plain(value: Any) -> Any:
    if callable(value):
        raise EvaluationError(
            "the expression gives a function, not a value (did you mean to call it, or is a key named like a method?)"
        )
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT:
            raise too_long()
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, range):
        return list(value)
    return value


_NO_ATTRIBUTE = re.compile(r"'(?:[\w ]+) object' has no attribute '([^']*)'")


def _evaluation_error(exc: Exception) -> EvaluationError:
    if isinstance(exc, EvaluationError):
        return exc
    if isinstance(exc, UndefinedError):
        return _undefined(str(exc.message or exc))
    if isinstance(exc, SecurityError):
        return EvaluationError(f"not allowed: {exc}")
    if isinstance(exc, conversions.ConversionError):
        return EvaluationError(str(exc))
    if isinstance(exc, ZeroDivisionError):
        return EvaluationError("division by zero")
    return EvaluationError(f"{type(exc).__name__}: {exc}")


def _undefined(message: str) -> EvaluationError:
    match = re.search(r"'None' has no attribute '([^']*)'", message)
    if match:
        return EvaluationError(f"a value is empty (null), so `{match.group(1)}` cannot be read from it")
    match = _NO_ATTRIBUTE.search(message)
    if match:
        return EvaluationError(f"`{match.group(1)}` is missing from the data")
    match = re.fullmatch(r"'([^']*)' is undefined", message)
    if match:
        return EvaluationError(f"`{match.group(1)}` is not defined")
    return EvaluationError(message)
