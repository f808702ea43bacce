"""JMESPath expressions: compiled once with located syntax errors, evaluated with size guards and plain errors."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import jmespath
import jmespath.exceptions
from jmespath import visitor

from mapper.errors import did_you_mean
from mapper.language import conversions
from mapper.language.expressions import query_errors
from mapper.language.expressions.errors import EvaluationError, ExpressionSyntaxError
from mapper.language.expressions.functions import FUNCTION_NAMES, OPTIONS, call_problems, unknown_functions
from mapper.language.expressions.limits import guard_size
from mapper.language.expressions.references import Chain, query_chains

# One interpreter for every query: `ParsedResult.search` builds a new one per call, which costs more than
# evaluating a short path. It keeps no state between calls but a cache of its visit methods.
_INTERPRETER = visitor.TreeInterpreter(OPTIONS)


@dataclass(frozen=True)
class Query:
    """A compiled JMESPath expression."""

    source: str
    search: Callable[[Any], Any]
    references: tuple[Chain, ...]  # paths read from the root, e.g. ("result", "node", "duration")
    data_reads: tuple[Chain, ...] = ()  # the same, read on through `from_json(...)` (see references.py)
    # Mistakes that still compile: reported as errors by the compiler, which also checks the names behind them.
    problems: tuple[ExpressionSyntaxError, ...] = ()


def compile_query(source: str) -> Query:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parsed = jmespath.compile(source)
    except jmespath.exceptions.JMESPathError as exc:
        raise query_errors.explain(source, exc) from None
    if any(issubclass(w.category, PendingDeprecationWarning) for w in caught):
        raise query_errors.backtick_text(source)
    ast = cast(dict[str, Any], parsed.parsed)
    unknown = unknown_functions(ast)
    if unknown:
        name = unknown[0]
        raise ExpressionSyntaxError(
            f"JMESPath: unknown function `{name}()`",
            source.find(name + "("),
            len(name),
            hint=did_you_mean(name, FUNCTION_NAMES),
        )
    for name, message, hint in call_problems(ast):
        spot = re.search(r"\b" + re.escape(name) + r"\s*\(", source)
        raise ExpressionSyntaxError(message, spot.start() if spot else 0, len(name), hint=hint)
    problems = tuple(query_errors.misplaced_not(source, ast))
    return Query(
        source,
        _searcher(ast, parsed.expression),
        tuple(query_chains(ast)),
        data_reads=tuple(query_chains(ast, through_json=True)),
        problems=problems,
    )


def _searcher(ast: dict[str, Any], expression: str) -> Callable[[Any], Any]:
    """jmespath's own interpreter on the parsed tree, with failures in plain words and the size guard."""
    visit = _INTERPRETER.visit

    def search(data: Any) -> Any:
        try:
            result = visit(ast, data)  # type: ignore[arg-type]  # the parser's dict is the tree node
        except (jmespath.exceptions.JMESPathError, conversions.ConversionError) as exc:
            raise EvaluationError(f"JMESPath `{expression}` failed: {exc}") from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise EvaluationError(f"JMESPath `{expression}` failed: {exc}") from None
        if type(result) is list or type(result) is str:
            guard_size(result)
        return result

    return search
