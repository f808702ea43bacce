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
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import jmespath
import jmespath.exceptions
import jmespath.functions
from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mapper.errors import did_you_mean
from mapper.language import conversions
from mapper.language.expressions import closures, direct

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


class _Functions(jmespath.functions.Functions):
    """Custom JMESPath functions (documented in docs/mapping.md, "Functions")."""

    @jmespath.functions.signature({"types": []})
    def _func_to_iso8601(self, value: Any) -> str:
        return conversions.iso8601(value)

    @jmespath.functions.signature({"types": []})
    def _func_sap_date(self, value: Any) -> str:
        return conversions.sap_date(value)

    @jmespath.functions.signature({"types": []})
    def _func_duration_iso(self, value: Any) -> str:
        return conversions.duration_iso(value)

    @jmespath.functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    @jmespath.functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @jmespath.functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, value: str, separator: str) -> list[str]:
        return value.split(separator) if separator else list(value)

    @jmespath.functions.signature()
    def _func_now(self) -> str:
        return conversions.now()

    @jmespath.functions.signature({"types": []})
    def _func_from_json(self, value: Any) -> Any:
        return conversions.from_json(value)


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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parsed = jmespath.compile(source)
    except jmespath.exceptions.LexerError as exc:
        value = str(exc.lexer_value or "")
        raise ExpressionSyntaxError(
            f"JMESPath: {_plain_jmespath(exc.message, value)}",
            exc.lexer_position,
            1 if value[:1] in ("'", '"', "`") else len(value),
            hint=_jmespath_hint(source, "unknown", value),
        ) from None
    except jmespath.exceptions.IncompleteExpressionError:
        raise ExpressionSyntaxError(
            "JMESPath: the expression ends too early", len(source), 1, hint=_jmespath_hint(source, "eof", "")
        ) from None
    except jmespath.exceptions.EmptyExpressionError:
        raise ExpressionSyntaxError("JMESPath: the expression is empty", 0) from None
    except jmespath.exceptions.ParseError as exc:
        value = str(exc.token_value or "")
        raise ExpressionSyntaxError(
            f"JMESPath: {_plain_jmespath(exc.msg, value, exc.token_type)}",
            exc.lex_position,
            len(value) or 1,
            hint=_jmespath_hint(source, exc.token_type, value, exc.lex_position),
        ) from None
    if any(issubclass(w.category, PendingDeprecationWarning) for w in caught):
        raise _backtick_text(source)  # jmespath would read it as text, with a warning: say what to write
    ast = cast(dict[str, Any], parsed.parsed)
    references = tuple(_root_chains(ast))
    unknown = _unknown_functions(ast)
    if unknown:
        name = unknown[0]
        raise ExpressionSyntaxError(
            f"JMESPath: unknown function `{name}()`",
            source.find(name + "("),
            len(name),
            hint=did_you_mean(name, FUNCTION_NAMES),
        )
    return Query(source, _searcher(ast, parsed), references)


def _backtick_text(source: str) -> ExpressionSyntaxError:
    for literal in re.finditer(r"`((?:[^`\\]|\\.)*)`", source):
        try:
            json.loads(literal.group(1).replace("\\`", "`"))
        except ValueError:
            text = literal.group(1).strip()
            return ExpressionSyntaxError(
                f"JMESPath: `{text}` in backticks is not a JSON value",
                literal.start(),
                len(literal.group(0)),
                hint=f"write text in single quotes: '{text}'",
            )
    return ExpressionSyntaxError("JMESPath: a value in backticks is not JSON", 0, hint="write text in single quotes")


def _searcher(ast: dict[str, Any], parsed: Any) -> Callable[[Any], Any]:
    """The expression as closures (see `closures`), with failures in plain words and the size guard."""
    evaluate = closures.compile_ast(ast, _OPTIONS)
    expression = parsed.expression

    def search(data: Any) -> Any:
        try:
            result = evaluate(data)
        except (jmespath.exceptions.JMESPathError, conversions.ConversionError) as exc:
            raise EvaluationError(f"JMESPath `{expression}` failed: {exc}") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EvaluationError(f"JMESPath `{expression}` failed: {exc}") from None
        if type(result) is list or type(result) is str:
            _guard_size(result)
        return result

    return search


def _guard_size(result: Any) -> None:
    if isinstance(result, list) and len(result) > MAX_RESULT_ITEMS:
        raise EvaluationError(f"an expression produced {len(result)} items; at most {MAX_RESULT_ITEMS} are allowed")
    if isinstance(result, str) and len(result) > MAX_OUTPUT:
        raise EvaluationError(f"an expression produced {len(result)} characters; at most {MAX_OUTPUT} are allowed")


def _root_chains(node: dict[str, Any]) -> Iterator[Chain]:
    """Paths an expression reads from its root (fields inside projections and filters are relative)."""
    kind = node["type"]
    chain = _reference_chain(node)
    if chain is not None:
        yield chain
        return
    children = node.get("children", [])
    if kind in (
        "subexpression",
        "index_expression",
        "pipe",
        "projection",
        "value_projection",
        "filter_projection",
        "flatten",
    ):
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
    if unclosed := re.match(r"Unclosed (.) delimiter", message):
        return f"the {_QUOTE_NAMES.get(unclosed.group(1), 'quote')} {unclosed.group(1)} is never closed"
    if "Unexpected token" in message or "Expecting" in message or message.lower() == "invalid token":
        return f"unexpected `{value}`"
    if "Unknown token" in message:
        return f"unexpected character `{value}`"
    return message[0].lower() + message[1:] if message else "the expression cannot be read"


_QUOTE_NAMES = {"'": "quote", '"': "double quote", "`": "backtick"}


def _jmespath_hint(source: str, token_type: str | None, value: str, offset: int = -1) -> str | None:
    if value == "-" or ("-" in source and token_type in ("number", "lbracket")):
        return 'a name with a dash must be quoted: headers."x-scope-domain"'
    if (token_type or "").lower() == "eof":
        return "check for a missing closing bracket or a dangling `.`, `&&` or `||`"
    if value == "=":
        return "compare with `==`, not `=`"
    if value[:1] in ("'", '"', "`") and token_type == "unknown":
        return f"add the closing {value[:1]}"
    if offset > 0 and source[offset - 1 : offset] == ".":
        return "after `.` comes a name, `*`, `[` or `{`"
    if token_type == "unknown" and len(value) == 1 and not value.isalnum():
        return "JMESPath compares with ==, !=, <, <=, >, >= and joins conditions with && and ||"
    return None


# ---------------------------------------------------------------------------------------------- Jinja


class EncodedText(str):
    """Text already percent-encoded by `urlencode`; a PATH template inserts it as it is."""


def _urlencode(value: Any) -> EncodedText:
    return EncodedText(conversions.urlencode(value))


_NULL_IN_TEXT = "a value inserted into the text is empty (null); write `{{ name or '' }}` if empty is fine there"


def _text_finalize(value: Any) -> Any:
    # Jinja would write "None": in a work note that is a bug report, in a URL a wrong record.
    if value is None:
        raise EvaluationError(_NULL_IN_TEXT)
    return value


def _path_finalize(value: Any) -> Any:
    if isinstance(value, EncodedText):
        return value
    if isinstance(value, Undefined):
        return value
    if value is None:
        raise EvaluationError(_NULL_IN_TEXT)
    text = conversions.urlencode(value)
    if text in (".", ".."):
        raise EvaluationError(f"'{text}' cannot be a URL path segment")
    return text


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _checked_binop(op: str, left: Any, right: Any) -> Any:
    if op == "*":
        for sequence, count in ((left, right), (right, left)):
            repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
            if repeated and len(sequence) * count > MAX_REPEAT:
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
    "from_json": conversions.from_json,
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


def _odata_key(value: Any) -> EncodedText:
    """`odata_quote` inside a URL path: the quotes stay as they are (as SAP's own clients send them),
    the value between them is percent-encoded, so it still cannot add a segment or a query."""
    quoted = conversions.odata_quote(value)
    return EncodedText("'" + urllib.parse.quote(quoted[1:-1], safe="'") + "'")


TEXT = _environment(_text_finalize)
PATH = _environment(_path_finalize)
PATH.filters["odata_quote"] = _odata_key
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
    _check_names(source, tree, environment)
    if single and environment is TEXT and not _is_expression(single.group("expr"), environment):
        single = None  # `{{ a, b }}` prints as a template but is no expression on its own: render it as text
    plain = _plain_parts(tree, environment)
    if single and environment is TEXT:
        expression_source = single.group("expr")
        if plain is not None and len(plain) == 1 and not isinstance(plain[0], str):
            # Rendered by look-up and plain computing; Jinja's code is only the fallback, made when first needed.
            fallback = _lazy(lambda: _native_renderer(environment, expression_source))
            return Template(source, True, _direct_native(plain[0], fallback), references)
        return Template(source, True, _lazy(lambda: _native_renderer(environment, expression_source)), references)
    if plain is not None:
        finalize = _path_finalize if environment is PATH else _text_finalize
        fallback = _lazy(lambda: _text_renderer(environment, tree))
        return Template(source, False, _direct_text(plain, finalize, fallback), references)
    return Template(source, False, _lazy(lambda: _text_renderer(environment, tree)), references)


Render = Callable[[Mapping[str, Any]], Any]


def _lazy(build: Callable[[], Render]) -> Render:
    """A renderer whose Python code Jinja generates on first use.

    Everything that can be wrong with a template is found when it is parsed and checked (`_check_names`);
    generating its code costs ~0.3 ms a template, and `wlmap validate` runs as a pre-commit hook, where
    nothing renders. Building twice in a race is harmless.
    """
    built: list[Render] = []

    def render(scope: Mapping[str, Any]) -> Any:
        if not built:
            try:
                built.append(build())
            except Exception as exc:  # a check `_check_names` lacks: still a located error, never a crash
                raise EvaluationError(f"the template cannot be compiled: {exc}") from None
        return built[0](scope)

    return render


def _native_renderer(environment: _Sandbox, expression_source: str) -> Render:
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


def _text_renderer(environment: _Sandbox, tree: nodes.Template) -> Render:
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
                    raise EvaluationError(f"the template produced more than {MAX_OUTPUT} characters")
                parts.append(chunk)
        except EvaluationError:
            raise
        except Exception as exc:
            raise _evaluation_error(exc) from None
        return "".join(parts)

    return render_text


# -- the direct path: lookups and plain computing, without Jinja's runtime (see mapper/direct.py) -----------
# Anything a closure does not cover (a value that is not a dict on the way, a missing key, a number that is a
# string...) goes to Jinja, so the result and the error messages are always Jinja's.

Part = str | Chain | direct.Eval  # text, a plain name (its null is named in the error), or a computed value


def _plain_parts(tree: nodes.Template, environment: _Sandbox) -> list[Part] | None:
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts: list[Part] = []
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(node.data)
            continue
        chain = direct.plain_chain(node)
        computed = direct.compile_node(node, environment.filters, _checked_binop) if chain is None else None
        if chain is None and computed is None:
            return None
        parts.append(chain if chain is not None else computed)  # type: ignore[arg-type]
    return parts


def _direct_native(part: Chain | direct.Eval, fallback: Render) -> Render:
    if isinstance(part, tuple):
        chain = part

        def render(scope: Mapping[str, Any]) -> Any:
            try:
                value = direct.lookup(scope, chain)
            except direct.NotPlain:
                return fallback(scope)
            return _plain(value) if type(value) is str or type(value) is tuple else value

        return render
    compute = part

    def render_computed(scope: Mapping[str, Any]) -> Any:
        try:
            value = compute(scope)
        except direct.NotPlain:
            return fallback(scope)
        return _plain(value)

    return render_computed


def _direct_text(parts: list[Part], finalize: Callable[[Any], Any] | None, fallback: Render) -> Render:
    frozen = tuple(parts)

    def render(scope: Mapping[str, Any]) -> Any:
        pieces = []
        try:
            for part in frozen:
                if type(part) is str:
                    pieces.append(part)
                    continue
                if type(part) is tuple:
                    value = direct.lookup(scope, part)
                    if value is None:
                        name = ".".join(part)
                        raise EvaluationError(
                            f"`{name}` is empty (null), so it cannot be inserted into the text; "
                            f"write `{{{{ {name} or '' }}}}` if empty is fine there"
                        )
                else:
                    value = part(scope)  # type: ignore[operator]
                    if value is None:  # Jinja's own words for it
                        raise direct.NotPlain
                pieces.append(str(finalize(value) if finalize is not None else value))
        except direct.NotPlain:
            return fallback(scope)
        text = "".join(pieces)
        if len(text) > MAX_OUTPUT:
            raise EvaluationError(f"the template produced more than {MAX_OUTPUT} characters")
        return text

    return render


def _plain(value: Any) -> Any:
    if callable(value):
        raise EvaluationError(
            "the expression gives a function, not a value (did you mean to call it, or is a key named like a method?)"
        )
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
    if isinstance(exc, SecurityError):
        return EvaluationError(f"not allowed: {exc}")
    if isinstance(exc, conversions.ConversionError):
        return EvaluationError(str(exc))
    if isinstance(exc, ZeroDivisionError):
        return EvaluationError("division by zero")
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


def _is_expression(text: str, environment: _Sandbox) -> bool:
    """What `compile_expression` checks before it generates code: one expression, nothing after it."""
    try:
        parser = Parser(environment, text, state="variable")
        parser.parse_expression()
        return bool(parser.stream.eos)
    except TemplateSyntaxError:
        return False


def _check_names(source: str, tree: nodes.Template, environment: _Sandbox) -> None:
    """Filters and tests must exist, and templates cannot load other templates (there are none to load)."""
    for node in tree.find_all((nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport, nodes.Block)):
        tag = type(node).__name__.lower().replace("fromimport", "from")
        found = re.search(r"\{%-?\s*" + tag + r"\b", source)
        raise ExpressionSyntaxError(
            f"template: `{{% {tag} %}}` cannot be used in a mapping",
            found.start() if found else 0,
            len(found.group(0)) if found else 2,
            hint="a mapping's templates stand alone; write the text out where it is needed",
        )
    for loop in tree.find_all(nodes.For):  # Jinja finds this only when it generates code, which waits for use
        for target in loop.target.find_all(nodes.Name):
            if target.name == "loop":
                found = re.search(r"\bloop\b", source)
                raise ExpressionSyntaxError(
                    "template: `loop` is Jinja's own name inside a `for`; use another name",
                    found.start() if found else 0,
                    4,
                )
    checks = (("filter", environment.filters, nodes.Filter), ("test", environment.tests, nodes.Test))
    for kind, table, found_in in checks:
        unknown = sorted({node.name for node in tree.find_all(found_in) if node.name not in table})
        if unknown:
            name = unknown[0]
            before = r"\|\s*" if kind == "filter" else r"\bis\s+(?:not\s+)?"
            spot = re.search(before + r"(" + re.escape(name) + r")\b", source) or re.search(re.escape(name), source)
            offset = spot.start(spot.lastindex or 0) if spot else 0
            listed = "see the filters in docs/mapping.md" if kind == "filter" else f"tests: {', '.join(_PLAIN_TESTS)}"
            hint = did_you_mean(name, table) or listed
            raise ExpressionSyntaxError(f"unknown {kind} `{name}`", offset, len(name), hint=hint)


_PLAIN_TESTS = (
    "defined",
    "divisibleby",
    "eq",
    "even",
    "false",
    "ge",
    "gt",
    "in",
    "le",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sequence",
    "string",
    "true",
)
_TOKENS = {"end of print statement": "}}", "end of statement block": "%}", "end of template": "the end"}
_OPENING_TAGS = ("if", "for", "filter", "macro", "call", "with", "block", "autoescape", "raw")


def _token(name: str) -> str:
    return _TOKENS.get(name, name)


def _plain_jinja(message: str) -> tuple[str, str | None, str | None]:
    """(message, hint, the token to point at) for a Jinja syntax error message."""
    message = message.strip()
    if match := re.match(r"Unexpected end of template\. .*innermost block that needs to be closed is '(\w+)'", message):
        tag = match.group(1)
        return f"template: `{{% {tag} %}}` is never closed", f"add `{{% end{tag} %}}` where it should end", None
    if match := re.match(
        r"Encountered unknown tag '(\w+)'\. .*innermost block that needs to be closed is '(\w+)'", message
    ):
        tag, open_tag = match.groups()
        return (
            f"template: `{{% {tag} %}}` does not close the open `{{% {open_tag} %}}`",
            f"close it with `{{% end{open_tag} %}}` first",
            tag,
        )
    if match := re.match(r"Encountered unknown tag '(\w+)'", message):
        tag = match.group(1)
        if tag.startswith("end") or tag in ("else", "elif"):
            return f"template: `{{% {tag} %}}` has no opening tag", "remove it, or add the tag it belongs to", tag
        known = ("if", "for", "set", "filter", "elif", "else")
        return f"template: unknown tag `{{% {tag} %}}`", did_you_mean(tag, known) or f"tags: {', '.join(known)}", tag
    if message.startswith("unexpected end of template"):
        return "template: `{{` is never closed", "add `}}`", None
    if match := re.match(r"""unexpected char ['"](.)['"] at (\d+)""", message):
        quote = match.group(1)
        if quote in "'\"":
            return f"template: a text in quotes is never closed (`{quote}`)", f"add the closing `{quote}`", None
        return f"template: unexpected character `{quote}`", None, quote
    if message == "Missing end of comment tag":
        return "template: a `{#` comment is never closed", "add `#}`", None
    if match := re.match(r"expected token '([^']+)', got '([^']+)'", message):
        wanted, got = _token(match.group(1)), _token(match.group(2))
        wanted = "a name" if wanted == "name" else f"`{wanted}`"
        advice = "a filter name must follow `|`" if wanted == "a name" else None
        if wanted == "`}}`" and got not in ("}}", "%}"):
            advice = "join names with `~` or an operator; to write text, put it outside `{{ }}`"
        return f"template: expected {wanted}, found `{got}`", advice, match.group(2)
    if match := re.match(r"Expected an expression, got '([^']+)'", message):
        got = _token(match.group(1))
        return f"template: a value is missing before `{got}`", None, match.group(1)
    if match := re.match(r"unexpected '([^']+)'(?:, expected '([^']+)')?", message):
        got = _token(match.group(1))
        if match.group(2):
            return f"template: unexpected `{got}`, expected `{_token(match.group(2))}`", None, match.group(1)
        if got in ("}}", "%}"):
            return f"template: a value is missing before `{got}`", None, match.group(1)
        closing = {"}": "close `{{` with `}}`", "%": "close `{%` with `%}`"}
        return f"template: unexpected `{got}`", closing.get(got), match.group(1)
    return f"template: {message[0].lower()}{message[1:]}" if message else "template: cannot be read", None, None


def _locate_jinja_error(source: str, exc: TemplateSyntaxError, environment: _Sandbox) -> ExpressionSyntaxError:
    """Jinja reports only a line: find the tag on it that fails alone, and the token inside it."""
    raw = exc.message or str(exc)
    message, hint, token = _plain_jinja(raw)
    if match := re.match(r"unexpected char .* at (\d+)", raw):
        return ExpressionSyntaxError(message, int(match.group(1)), 1, hint)
    block = re.search(r"innermost block that needs to be closed is '(\w+)'", raw)
    if block and raw.startswith("Unexpected end of template"):
        opened = list(re.finditer(r"\{%-?\s*" + block.group(1) + r"\b", source))
        spot = opened[-1] if opened else None
        return ExpressionSyntaxError(message, spot.start() if spot else 0, len(spot.group(0)) if spot else 2, hint)
    if raw.startswith("unexpected end of template"):
        opened = list(re.finditer(r"\{\{", source))
        return ExpressionSyntaxError(message, opened[-1].start() if opened else 0, 2, hint)
    if raw == "Missing end of comment tag":
        return ExpressionSyntaxError(message, max(source.rfind("{#"), 0), 2, hint)
    lines = source.split("\n")
    line = min(max(exc.lineno, 1), len(lines))
    line_start = sum(len(x) + 1 for x in lines[: line - 1])
    text = lines[line - 1]
    # The shortest start of the template that fails the same way ends just after the offending token.
    for end in range(line_start + 1, min(line_start + len(text), line_start + 2000) + 1):
        try:
            environment.parse(source[:end])
        except TemplateSyntaxError as shorter:
            if (shorter.message or str(shorter)) != raw or shorter.lineno != exc.lineno:
                continue
            shown = _token(token) if token else ""
            if shown and source[:end].endswith(shown):
                return ExpressionSyntaxError(message, end - len(shown), len(shown), hint)
            return ExpressionSyntaxError(message, end - 1, 1, hint)
    for block in re.finditer(r"\{\{.*?(?:\}\}|$)|\{%.*?(?:%\}|$)", text):
        if not _fails_alone(block.group(0), environment):
            continue
        inside = _find_token(block.group(0), token)
        if inside is None:
            return ExpressionSyntaxError(message, line_start + block.start(), 2, hint)
        offset, width = inside
        return ExpressionSyntaxError(message, line_start + block.start() + offset, width, hint)
    first = re.search(r"\{[{%]", text)
    return ExpressionSyntaxError(message, line_start + (first.start() if first else 0), 2, hint)


def _fails_alone(block: str, environment: _Sandbox) -> bool:
    """Whether one `{{ }}` or `{% %}` fails to parse on its own (an opening tag gets its closing tag)."""
    tag = re.match(r"\{%-?\s*(\w+)", block)
    if tag:
        name = tag.group(1)
        if name.startswith("end") or name in ("else", "elif"):
            return block.endswith("%}") is False
        if name in _OPENING_TAGS or (name == "set" and "=" not in block):
            block += f"{{% end{name} %}}"
    try:
        environment.parse(block)
    except TemplateSyntaxError:
        return True
    return False


def _find_token(block: str, token: str | None) -> tuple[int, int] | None:
    """(offset, width) of `token` inside a block; its closing delimiter for 'end of ...' tokens."""
    if token is None:
        return None
    if token in ("end of print statement", "end of statement block"):
        closing = "}}" if token == "end of print statement" else "%}"
        end = block.rfind(closing)
        return (end, 2) if end >= 2 else (len(block), 1)
    position = block.find(token, 2)
    if position < 0:
        return None
    return position, len(token)
