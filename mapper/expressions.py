"""JMESPath expressions and Jinja templates: compile once (with located syntax errors), evaluate safely.

The only module that imports jmespath and jinja2. What it guarantees:
- Jinja runs in an immutable sandbox with StrictUndefined: a missing value is an error, never "".
- `*` and `**` are checked before they run, and rendered text is capped (MAX_OUTPUT), so a template
  cannot allocate gigabytes (`{{ 'a' * 50000000 }}` fails instead of rendering 50 MB).
- A template that is exactly one `{{ expression }}` returns the expression's value with its type.
- Data is never evaluated as template text: values are inserted, not re-parsed.
- Values inserted into a URL path are percent-encoded (PATH templates), so data cannot add segments,
  a query string or a host.
- JMESPath results are size-guarded (MAX_RESULT_ITEMS / MAX_OUTPUT).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mapper import conversions

MAX_OUTPUT = 1024 * 1024  # characters one template or expression may produce
MAX_RESULT_ITEMS = 100_000
MAX_REPEAT = 100_000  # longest string or list `*` may build
MAX_EXPONENT = 64

Chain = tuple[str, ...]  # a name and the attributes read from it: ("steps", "lookup", "sys_id")


class ExpressionSyntaxError(Exception):
    """A syntax error at `offset` (0-based character index in the expression or template text)."""

    def __init__(self, message: str, offset: int, width: int = 1, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = max(0, offset)
        self.width = max(1, width)
        self.hint = hint


class EvaluationError(Exception):
    """An expression or template failed on the data of one event; the message is in plain words."""


# ---------------------------------------------------------------------------------------------- JMESPath


class _Functions(jmespath.functions.Functions):  # type: ignore[misc]
    """Custom JMESPath functions (documented in docs/mapping.md, "Functions")."""

    @jmespath.functions.signature({"types": []})  # type: ignore[untyped-decorator]
    def _func_to_iso8601(self, value: Any) -> str:
        return conversions.iso8601(value)

    @jmespath.functions.signature({"types": []})  # type: ignore[untyped-decorator]
    def _func_sap_date(self, value: Any) -> str:
        return conversions.sap_date(value)

    @jmespath.functions.signature({"types": []})  # type: ignore[untyped-decorator]
    def _func_duration_iso(self, value: Any) -> str:
        return conversions.duration_iso(value)

    @jmespath.functions.signature({"types": []}, {"types": []})  # type: ignore[untyped-decorator]
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    @jmespath.functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @jmespath.functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_split(self, value: str, separator: str) -> list[str]:
        return value.split(separator) if separator else list(value)

    @jmespath.functions.signature()  # type: ignore[untyped-decorator]
    def _func_now(self) -> str:
        return conversions.now()


FUNCTION_NAMES = frozenset(
    name[len("_func_") :] for name in dir(jmespath.functions.Functions) + dir(_Functions) if name.startswith("_func_")
)
_OPTIONS = jmespath.Options(custom_functions=_Functions())


@dataclass(frozen=True)
class Query:
    """A compiled JMESPath expression."""

    source: str
    search: Callable[[Any], Any]
    references: tuple[Chain, ...]  # paths read from the root, e.g. ("result", "node", "duration")


def compile_query(source: str) -> Query:
    try:
        parsed = jmespath.compile(source)
    except jmespath.exceptions.LexerError as exc:
        value = str(exc.lexer_value or "")
        raise ExpressionSyntaxError(f"JMESPath: {_plain_jmespath(exc.message, value)}", exc.lexer_position, len(value),
                                    hint=_jmespath_hint(source, "unknown", value)) from None
    except jmespath.exceptions.IncompleteExpressionError:
        raise ExpressionSyntaxError("JMESPath: the expression ends too early", len(source), 1,
                                    hint=_jmespath_hint(source, "eof", "")) from None
    except jmespath.exceptions.EmptyExpressionError:
        raise ExpressionSyntaxError("JMESPath: the expression is empty", 0) from None
    except jmespath.exceptions.ParseError as exc:
        value = str(exc.token_value or "")
        raise ExpressionSyntaxError(
            f"JMESPath: {_plain_jmespath(exc.msg, value, exc.token_type)}", exc.lex_position, len(value) or 1,
            hint=_jmespath_hint(source, exc.token_type, value),
        ) from None
    ast = parsed.parsed
    references = tuple(_root_chains(ast))
    unknown = _unknown_functions(ast)
    if unknown:
        name = unknown[0]
        raise ExpressionSyntaxError(f"JMESPath: unknown function `{name}()`", source.find(name + "("), len(name),
                                    hint=_did_you_mean(name, FUNCTION_NAMES))
    return Query(source, _searcher(ast, parsed), references)


def _searcher(ast: dict[str, Any], parsed: Any) -> Callable[[Any], Any]:
    """A fast closure for plain paths (`a.b.c`, the common case); the interpreter for the rest."""
    chain = _field_chain(ast)
    if chain is not None:
        getters = tuple(chain)

        def search_path(data: Any) -> Any:
            for key in getters:
                if type(data) is not dict:
                    return None
                data = data.get(key)
            return data

        return search_path

    def search(data: Any) -> Any:
        try:
            result = parsed.search(data, _OPTIONS)
        except (jmespath.exceptions.JMESPathError, conversions.ConversionError) as exc:
            raise EvaluationError(f"JMESPath `{parsed.expression}` failed: {exc}") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EvaluationError(f"JMESPath `{parsed.expression}` failed: {exc}") from None
        _guard_size(result)
        return result

    return search


def _guard_size(result: Any) -> None:
    if isinstance(result, list) and len(result) > MAX_RESULT_ITEMS:
        raise EvaluationError(f"an expression produced {len(result)} items; at most {MAX_RESULT_ITEMS} are allowed")
    if isinstance(result, str) and len(result) > MAX_OUTPUT:
        raise EvaluationError(f"an expression produced {len(result)} characters; at most {MAX_OUTPUT} are allowed")


def _field_chain(node: dict[str, Any]) -> list[str] | None:
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] == "subexpression":  # n-ary in jmespath >= 1.1, binary before
        chain: list[str] = []
        for child in node["children"]:
            part = _field_chain(child)
            if part is None:
                return None
            chain += part
        return chain
    return None


def _root_chains(node: dict[str, Any]) -> Iterator[Chain]:
    """Paths an expression reads from its root (fields inside projections and filters are relative)."""
    kind = node["type"]
    chain = _reference_chain(node)
    if chain is not None:
        yield chain
        return
    children = node.get("children", [])
    if kind in ("subexpression", "index_expression", "pipe", "projection", "value_projection",
                "filter_projection", "flatten"):
        if children:
            yield from _root_chains(children[0])
        if kind == "filter_projection" and len(children) > 2:
            return
        return
    if kind == "expref":
        return
    for child in children:
        yield from _root_chains(child)


def _reference_chain(node: dict[str, Any]) -> Chain | None:
    """`a.b[0].c` → ("a", "b", "c"); None when the node is not a plain path."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind in ("subexpression", "index_expression"):
        chain: Chain = ()
        for child in node["children"]:
            if child["type"] == "index":
                continue
            part = _reference_chain(child)
            if part is None:
                return None
            chain += part
        return chain
    return None


def _unknown_functions(node: dict[str, Any]) -> list[str]:
    found = []
    if node["type"] == "function_expression" and node["value"] not in FUNCTION_NAMES:
        found.append(node["value"])
    for child in node.get("children", []):
        if isinstance(child, dict):
            found.extend(_unknown_functions(child))
    return found


def _plain_jmespath(message: str, value: str, token_type: str | None = None) -> str:
    message = message.strip().rstrip(".")
    if (token_type or "").lower() == "eof" or "Incomplete expression" in message:
        return "the expression ends too early"
    if "Unexpected token" in message or "Expecting" in message:
        return f"unexpected `{value}`"
    if "Unclosed" in message or "unclosed" in message:
        return f"unclosed quote or bracket: {message}"
    if "Unknown token" in message:
        return f"unexpected character `{value}`"
    return message[0].lower() + message[1:] if message else "the expression cannot be read"


def _jmespath_hint(source: str, token_type: str | None, value: str) -> str | None:
    if value == "-" or ("-" in source and token_type in ("number", "lbracket")):
        return 'a name with a dash must be quoted: headers."x-scope-domain"'
    if (token_type or "").lower() == "eof":
        return "check for a missing closing bracket or a dangling `.`, `&&` or `||`"
    if value == "=":
        return "compare with `==`, not `=`"
    return None


# ---------------------------------------------------------------------------------------------- Jinja


class EncodedText(str):
    """Text already percent-encoded by `urlencode`; a PATH template inserts it as it is."""


def _urlencode(value: Any) -> EncodedText:
    return EncodedText(conversions.urlencode(value))


def _path_finalize(value: Any) -> Any:
    if isinstance(value, EncodedText):
        return value
    if value is None or isinstance(value, Undefined):
        return value
    text = conversions.urlencode(value)
    if text in (".", ".."):
        raise EvaluationError(f"'{text}' cannot be a URL path segment")
    return text


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _checked_binop(op: str, left: Any, right: Any) -> Any:
    if op == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int) and len(sequence) * count > MAX_REPEAT:
                raise SecurityError(f"repeating a value {count} times would make it longer than {MAX_REPEAT}")
        return operator.mul(left, right)
    if op == "**":
        if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed")
        if isinstance(left, int) and abs(left) > 1 and len(str(abs(left))) * abs(right) > 10_000:
            raise SecurityError("the result would have more than 10000 digits")
        return operator.pow(left, right)
    raise SecurityError(f"operator {op} is not allowed")


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return _checked_binop(operator, left, right)


_FILTERS: dict[str, Callable[..., Any]] = {
    "urlencode": _urlencode,
    "tojson": _tojson,
    "iso8601": conversions.iso8601,
    "maximo_datetime": conversions.maximo_datetime,
    "sap_date": conversions.sap_date,
    "sap_time": conversions.sap_time,
    "duration_iso": conversions.duration_iso,
    "minutes": conversions.minutes,
    "hours_minutes": conversions.hours_minutes,
    "odata_quote": conversions.odata_quote,
    "truncate_text": conversions.truncate_text,
}
_UNSAFE_FILTERS = ("center", "indent", "wordwrap", "xmlattr", "pprint", "filesizeformat")


def _environment(finalize: Callable[[Any], Any] | None) -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=finalize)
    for name in _UNSAFE_FILTERS:  # each can allocate far beyond its input from a small argument
        env.filters.pop(name, None)
    env.filters.update(_FILTERS)
    env.globals.clear()
    env.globals["range"] = _bounded_range
    return env


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > 10_000:
        raise SecurityError("range() is limited to 10000 items")
    return result


TEXT = _environment(None)
PATH = _environment(_path_finalize)
FILTER_NAMES = frozenset(TEXT.filters)

_SINGLE = re.compile(r"\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|%\}|\{#).)*)\}\}", re.DOTALL)
_TAG = re.compile(r"\{\{|\{%|\{#")


@dataclass(frozen=True)
class Template:
    """A compiled template. `render(scope)` returns a value (native) or text."""

    source: str
    native: bool
    render: Callable[[Mapping[str, Any]], Any]
    references: tuple[Chain, ...]


def is_template(source: str) -> bool:
    return bool(_TAG.search(source))


def compile_template(source: str, environment: _Sandbox = TEXT) -> Template:
    single = _SINGLE.fullmatch(source)
    try:
        tree = environment.parse(source)
    except TemplateSyntaxError as exc:
        raise _locate_jinja_error(source, exc, environment) from None
    references = tuple(_template_chains(tree))
    unknown = sorted({node.name for node in tree.find_all(nodes.Filter) if node.name not in environment.filters})
    if unknown:
        raise ExpressionSyntaxError(f"unknown filter `{unknown[0]}`", source.find(unknown[0]), len(unknown[0]),
                                    hint=_did_you_mean(unknown[0], environment.filters))
    if single and environment is TEXT:
        expression = environment.compile_expression(single.group("expr"), undefined_to_none=False)

        def render_native(scope: Mapping[str, Any]) -> Any:
            try:
                value = expression(scope)
            except Exception as exc:
                raise _evaluation_error(exc) from None
            if isinstance(value, Undefined):
                try:
                    value._fail_with_undefined_error()
                except UndefinedError as exc:
                    raise _evaluation_error(exc) from None
            return _plain(value)

        return Template(source, True, render_native, references)
    template = environment.from_string(tree)

    def render_text(scope: Mapping[str, Any]) -> str:
        size = 0
        parts = []
        try:
            for chunk in template.generate(scope):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise EvaluationError(f"the template produced more than {MAX_OUTPUT} characters")
                parts.append(chunk)
        except EvaluationError:
            raise
        except Exception as exc:
            raise _evaluation_error(exc) from None
        return "".join(parts)

    return Template(source, False, render_text, references)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_OUTPUT:
            raise EvaluationError(f"the template produced more than {MAX_OUTPUT} characters")
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
        message = str(exc.message or exc)
        match = _NO_ATTRIBUTE.search(message)
        if match:
            return EvaluationError(f"`{match.group(1)}` is missing from the data")
        match = re.fullmatch(r"'([^']*)' is undefined", message)
        if match:
            return EvaluationError(f"`{match.group(1)}` is not defined")
        return EvaluationError(message)
    if isinstance(exc, SecurityError):
        return EvaluationError(f"not allowed: {exc}")
    if isinstance(exc, conversions.ConversionError):
        return EvaluationError(str(exc))
    if isinstance(exc, ZeroDivisionError):
        return EvaluationError("division by zero")
    if isinstance(exc, TypeError | ValueError | OverflowError | AttributeError | KeyError | IndexError | RecursionError):
        return EvaluationError(f"{type(exc).__name__}: {exc}")
    return EvaluationError(f"{type(exc).__name__}: {exc}")


def _template_chains(tree: nodes.Template) -> Iterator[Chain]:
    """Names the template reads from its scope, with the attributes taken from them."""
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.With, nodes.AssignBlock)):
        for target in node.find_all(nodes.Name):
            if target.ctx in ("store", "param"):
                assigned.add(target.name)
    yield from _chains_in(tree, assigned)


def _chains_in(node: nodes.Node, assigned: set[str]) -> Iterator[Chain]:
    chain = _jinja_chain(node)
    if chain is not None:
        if chain[0] not in assigned and chain[0] != "loop":
            yield chain
        # arguments of a Getitem with a non-constant key still read names
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const):
            yield from _chains_in(node.arg, assigned)
        return
    for child in node.iter_child_nodes():
        yield from _chains_in(child, assigned)


def _jinja_chain(node: nodes.Node) -> Chain | None:
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        head = _jinja_chain(node.node)
        return (*head, node.attr) if head is not None else None
    if isinstance(node, nodes.Getitem):
        head = _jinja_chain(node.node)
        if head is None:
            return None
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return (*head, node.arg.value)
        return head
    return None


def _locate_jinja_error(source: str, exc: TemplateSyntaxError, environment: _Sandbox) -> ExpressionSyntaxError:
    """Jinja reports only a line: find the block on it that fails alone, and the token inside it."""
    message = _plain_jinja(exc.message or str(exc))
    lines = source.split("\n")
    line = min(max(exc.lineno, 1), len(lines))
    line_start = sum(len(x) + 1 for x in lines[: line - 1])
    for match in re.finditer(r"\{\{.*?(\}\}|$)|\{%.*?(%\}|$)", lines[line - 1]):
        block = match.group(0)
        try:
            environment.parse(block)
        except TemplateSyntaxError:
            token = re.search(r"'([^']+)'\s*$", exc.message or "")
            inside = block.find(token.group(1), 2) if token else -1
            offset = match.start() + (inside if inside >= 0 else 0)
            return ExpressionSyntaxError(message, line_start + offset, len(token.group(1)) if token and inside >= 0 else 2)
    return ExpressionSyntaxError(message, line_start + max(lines[line - 1].find("{"), 0), 2)


def _plain_jinja(message: str) -> str:
    message = message.replace("'end of print statement'", "`}}`").replace("'end of statement block'", "`%}`")
    message = message.replace("expected token", "expected").replace("unexpected end of template", "the template ends too early")
    return f"template: {message}"


def _did_you_mean(name: str, candidates: Any) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
