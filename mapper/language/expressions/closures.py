"""JMESPath ASTs → Python closures: the common node kinds run as plain function calls, the rest
through jmespath's own interpreter, node by node, so the result is always what jmespath computes.

Why: the tree interpreter walks a visitor with a method lookup per node per event; a closure per node is
several times faster for the paths, comparisons and boolean logic mappings are made of (issue 3 target:
evaluation within 10x of hand-written Python).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jmespath
from jmespath import visitor

Evaluate = Callable[[Any], Any]


def _false(value: Any) -> bool:
    # JMESPath truthiness: false, null, empty string/list/object are false; 0 is true.
    return value is None or value is False or value == "" or value == [] or value == {}


class Compiler:
    def __init__(self, options: jmespath.Options) -> None:
        self.interpreter = visitor.TreeInterpreter(options)
        self.functions = self.interpreter._functions  # type: ignore[attr-defined]  # the custom functions of `options`

    def compile(self, node: dict[str, Any]) -> Evaluate:
        method = getattr(self, "_" + node["type"], None)
        if method is None:
            return self._interpreted(node)
        result: Evaluate = method(node)
        return result

    def _interpreted(self, node: dict[str, Any]) -> Evaluate:
        visit = self.interpreter.visit

        def interpreted(value: Any) -> Any:
            return visit(node, value)  # type: ignore[arg-type]  # the parser's dict is the tree node

        return interpreted

    def _field(self, node: dict[str, Any]) -> Evaluate:
        key = node["value"]

        def field(value: Any) -> Any:
            try:
                return value.get(key)
            except AttributeError:
                return None

        return field

    def _subexpression(self, node: dict[str, Any]) -> Evaluate:
        parts = [self.compile(child) for child in node["children"]]
        if all(child["type"] == "field" for child in node["children"]):
            keys = tuple(child["value"] for child in node["children"])

            def path(value: Any) -> Any:
                for key in keys:
                    try:
                        value = value.get(key)
                    except AttributeError:
                        return None
                    if value is None:
                        return None
                return value

            return path

        return _chained(parts)

    def _index_expression(self, node: dict[str, Any]) -> Evaluate:
        parts = [self.compile(child) for child in node["children"]]

        return _chained(parts)

    def _index(self, node: dict[str, Any]) -> Evaluate:
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index

    def _literal(self, node: dict[str, Any]) -> Evaluate:
        constant = node["value"]

        def literal(value: Any) -> Any:
            return constant

        return literal

    def _current(self, node: dict[str, Any]) -> Evaluate:
        def current(value: Any) -> Any:
            return value

        return current

    def _comparator(self, node: dict[str, Any]) -> Evaluate:
        if node["value"] not in ("eq", "ne"):
            return self._interpreted(node)  # ordering rules (numbers only, else null) stay jmespath's
        left, right = (self.compile(child) for child in node["children"])
        equals = self.interpreter.COMPARATOR_FUNC["eq"]  # jmespath's equality: `true == 1` is false
        if node["value"] == "eq":

            def eq(value: Any) -> Any:
                return equals(left(value), right(value))

            return eq

        def ne(value: Any) -> Any:
            return not equals(left(value), right(value))

        return ne

    def _and_expression(self, node: dict[str, Any]) -> Evaluate:
        left, right = (self.compile(child) for child in node["children"])

        def both(value: Any) -> Any:
            first = left(value)
            return first if _false(first) else right(value)

        return both

    def _or_expression(self, node: dict[str, Any]) -> Evaluate:
        left, right = (self.compile(child) for child in node["children"])

        def either(value: Any) -> Any:
            first = left(value)
            return right(value) if _false(first) else first

        return either

    def _not_expression(self, node: dict[str, Any]) -> Evaluate:
        inner = self.compile(node["children"][0])

        def negation(value: Any) -> Any:
            return _false(inner(value))

        return negation

    def _pipe(self, node: dict[str, Any]) -> Evaluate:
        left, right = (self.compile(child) for child in node["children"])

        def pipe(value: Any) -> Any:
            return right(left(value))

        return pipe

    def _function_expression(self, node: dict[str, Any]) -> Evaluate:
        if any(child["type"] == "expref" for child in node["children"]):
            return self._interpreted(node)
        arguments = [self.compile(child) for child in node["children"]]
        call = self.functions.call_function
        name = node["value"]

        def function(value: Any) -> Any:
            return call(name, [argument(value) for argument in arguments])

        return function

    def _multi_select_hash(self, node: dict[str, Any]) -> Evaluate:
        pairs = [(child["value"], self.compile(child["children"][0])) for child in node["children"]]

        def select(value: Any) -> Any:
            if value is None:
                return None
            return {key: part(value) for key, part in pairs}

        return select

    def _multi_select_list(self, node: dict[str, Any]) -> Evaluate:
        parts = [self.compile(child) for child in node["children"]]

        def select(value: Any) -> Any:
            if value is None:
                return None
            return [part(value) for part in parts]

        return select


def compile_ast(ast: dict[str, Any], options: jmespath.Options) -> Evaluate:
    return Compiler(options).compile(ast)


def _chained(parts: list[Evaluate]) -> Evaluate:
    """Each part applied to what the one before gave; null stops the chain (JMESPath's projection rule)."""

    def chain(value: Any) -> Any:
        for part in parts:
            value = part(value)
            if value is None:
                return None
        return value

    return chain
