"""Templates rendered without Jinja's runtime when they only look values up and compute with them.

Most templates are text with `{{ name.attr }}` holes, a little arithmetic and a filter or two:
`{{ (seconds / 60) | round(1) }}`. Building a Jinja context for each render costs more than the work itself
(bench/evaluate.py), so such expressions are compiled here into Python closures. The rule that keeps the
results Jinja's: a closure only handles the plain case (dicts all the way down, keys that are there, numbers
for arithmetic, filters that are plain functions, called exactly as Jinja calls them) and raises `NotPlain`
for anything else (a missing key, a value of another type, an error in a filter); the caller then renders the
template with Jinja, so unusual values and every error message are Jinja's own.

Covered: constants, names with `.attr` and `['key']`, `+ - * / // % **` on numbers (`*` and `**` through the
sandbox's own checks), unary `-`/`+`, comparisons, `and`/`or`/`not`, `a if b else c`, `~`, string slices
and filters without `pass_context`/`pass_environment`-style arguments.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes

Chain = tuple[str, ...]
Eval = Callable[[Mapping[str, Any]], Any]
Binop = Callable[[str, Any, Any], Any]  # the sandbox's checked `*` and `**`

DICT_ATTRIBUTES = frozenset(dir(dict))  # Jinja reads `x.items` as the method, not the key: not plain
_CONSTANTS = (str, int, float, bool, type(None))
_NUMBERS = (int, float)
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
}


class NotPlain(Exception):
    """This render is not the plain case: let Jinja do it."""


def strict_chain(node: nodes.Node) -> Chain | None:
    """`name`, `name.attr`, `name['key']`... as the keys to look up, or None."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        head = strict_chain(node.node)
        return (*head, node.attr) if head is not None else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        head = strict_chain(node.node)
        return (*head, node.arg.value) if head is not None else None
    return None


def plain_chain(node: nodes.Node) -> Chain | None:
    chain = strict_chain(node)
    if chain is None or any(key in DICT_ATTRIBUTES for key in chain[1:]):
        return None
    return chain


def lookup(scope: Mapping[str, Any], chain: Chain) -> Any:
    value: Any = scope
    for key in chain:
        if type(value) is not dict or key not in value:
            raise NotPlain
        value = value[key]
    return value


def compile_node(node: nodes.Node, filters: Mapping[str, Callable[..., Any]], binop: Binop) -> Eval | None:
    """A closure computing `node` in the plain case (else raising NotPlain), or None if it is not covered."""

    def sub(child: nodes.Node) -> Eval | None:
        return compile_node(child, filters, binop)

    if isinstance(node, nodes.Const):
        if not isinstance(node.value, _CONSTANTS):
            return None
        constant = node.value
        return lambda scope: constant
    chain = plain_chain(node)
    if chain is not None:
        return lambda scope: lookup(scope, chain)
    if isinstance(node, nodes.Filter):
        return _filter(node, filters, sub)
    if isinstance(node, nodes.And | nodes.Or):  # BinExprs too, so first
        left, right = sub(node.left), sub(node.right)
        if left is None or right is None:
            return None
        if isinstance(node, nodes.And):
            return lambda scope: left(scope) and right(scope)
        return lambda scope: left(scope) or right(scope)
    if isinstance(node, nodes.BinExpr):
        return _arithmetic(node, sub, binop)
    if isinstance(node, nodes.Neg | nodes.Pos):
        operand = sub(node.node)
        if operand is None:
            return None
        sign = operator.neg if isinstance(node, nodes.Neg) else operator.pos
        return lambda scope: sign(_number(operand(scope)))
    if isinstance(node, nodes.Not):
        negated = sub(node.node)
        return None if negated is None else (lambda scope: not negated(scope))
    if isinstance(node, nodes.CondExpr):
        return _conditional(node, sub)
    if isinstance(node, nodes.Compare):
        return _comparison(node, sub)
    if isinstance(node, nodes.Concat):
        parts = [sub(child) for child in node.nodes]
        if any(part is None for part in parts):
            return None
        ready = tuple(part for part in parts if part is not None)
        return lambda scope: "".join([str(part(scope)) for part in ready])
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice):
        return _slice(node, node.arg, sub)
    return None


def _filter(
    node: nodes.Filter, filters: Mapping[str, Callable[..., Any]], sub: Callable[[nodes.Node], Eval | None]
) -> Eval | None:
    function = filters.get(node.name)
    if function is None or hasattr(function, "jinja_pass_arg") or node.node is None:
        return None
    if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
        return None
    value, arguments = sub(node.node), [sub(argument) for argument in node.args]
    if value is None or any(argument is None for argument in arguments):
        return None
    ready = tuple(argument for argument in arguments if argument is not None)

    def call(scope: Mapping[str, Any]) -> Any:
        given = value(scope)
        extra = [argument(scope) for argument in ready]
        try:
            return function(given, *extra)
        except Exception:  # Jinja renders it again and says what went wrong, in its words
            raise NotPlain from None

    return call


def _arithmetic(node: nodes.BinExpr, sub: Callable[[nodes.Node], Eval | None], binop: Binop) -> Eval | None:
    symbol = node.operator
    if symbol not in _ARITHMETIC and symbol not in ("*", "**"):
        return None
    left, right = sub(node.left), sub(node.right)
    if left is None or right is None:
        return None
    plain = _ARITHMETIC.get(symbol)

    def compute(scope: Mapping[str, Any]) -> Any:
        a, b = _number(left(scope)), _number(right(scope))
        try:
            return plain(a, b) if plain is not None else binop(symbol, a, b)
        except Exception:  # division by zero, a result too large...: Jinja's error, in its words
            raise NotPlain from None

    return compute


def _conditional(node: nodes.CondExpr, sub: Callable[[nodes.Node], Eval | None]) -> Eval | None:
    if node.expr2 is None:  # `a if b` alone is undefined when b is false: Jinja's case
        return None
    test, then, otherwise = sub(node.test), sub(node.expr1), sub(node.expr2)
    if test is None or then is None or otherwise is None:
        return None
    return lambda scope: then(scope) if test(scope) else otherwise(scope)


def _comparison(node: nodes.Compare, sub: Callable[[nodes.Node], Eval | None]) -> Eval | None:
    first = sub(node.expr)
    steps = [(_COMPARISONS.get(operand.op), sub(operand.expr)) for operand in node.ops]
    if first is None or any(compare is None or right is None for compare, right in steps):
        return None
    ready = tuple((compare, right) for compare, right in steps if compare is not None and right is not None)

    def compare_all(scope: Mapping[str, Any]) -> bool:
        left = first(scope)
        try:
            for compare, right_of in ready:
                right = right_of(scope)
                if not compare(left, right):  # chained, as Python (and Jinja's generated code) compares
                    return False
                left = right
        except TypeError:  # `'a' < 1`: Jinja's error
            raise NotPlain from None
        return True

    return compare_all


def _slice(node: nodes.Getitem, cut: nodes.Slice, sub: Callable[[nodes.Node], Eval | None]) -> Eval | None:
    value = sub(node.node)
    bounds = [None if part is None else sub(part) for part in (cut.start, cut.stop, cut.step)]
    given = [part for part in (cut.start, cut.stop, cut.step) if part is not None]
    if value is None or len([b for b in bounds if b is not None]) != len(given):
        return None

    def take(scope: Mapping[str, Any]) -> Any:
        text = value(scope)
        if type(text) is not str:
            raise NotPlain
        start, stop, step = (None if bound is None else bound(scope) for bound in bounds)
        if any(part is not None and type(part) is not int for part in (start, stop, step)) or step == 0:
            raise NotPlain
        return text[start:stop:step]

    return take


def _number(value: Any) -> Any:
    if type(value) not in _NUMBERS:  # bools, strings, None...: Jinja's case
        raise NotPlain
    return value
