"""One compilation: the document, the problems found so far, and compiling the expressions and values in it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mapper.errors import Location, Problem, Problems
from mapper.language import conversions, expressions
from mapper.language.compiler import references
from mapper.language.compiler.scope import Scope
from mapper.language.expressions import Chain, ExpressionSyntaxError, Template
from mapper.language.plan import EXTERNAL_DATA, Expression, Value
from mapper.language.source import Document, Path

Render = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Options:
    env: Mapping[str, str] | None = None  # when given, unset variables are reported (as warnings)
    graphql_schema: Any = None  # a graphql-core GraphQLSchema of the Scope AR API, when the user gave one
    graphql_schemas: Mapping[str, Any] = field(default_factory=dict)  # connection name → its API's schema
    env_names_elsewhere: frozenset[str] = frozenset()  # env names the other mappings read (for "did you mean")


DEFAULTS = Options()


class Compilation:
    """What the section compilers share: report a problem at a path, compile what is at a path."""

    def __init__(self, document: Document, options: Options) -> None:
        self.doc = document
        self.options = options
        self.problems = Problems()
        self.env_names: set[str] = set()
        self.env_locations: dict[str, Location] = {}
        # Every read of a deep link parameter (a chain through `externalData`): checked against `link:`.
        self.link_reads: list[tuple[Path, str, Chain]] = []

    # -- reporting ------------------------------------------------------------------------------------

    def error(
        self,
        path: Path,
        message: str,
        hint: str | None = None,
        key: bool = False,
        location: Location | None = None,
        severity: str = "error",
    ) -> None:
        if self.doc.is_refused(path):
            return  # the YAML reader already said what is wrong with this value
        location = location or self.doc.location(path, key)
        problem = Problem(
            location,
            message,
            path=self.doc.describe(path),
            hint=hint,
            source_line=self.doc.line_text(location.line),
            severity="warning" if severity == "warning" else "error",
        )
        self.problems.add(problem)

    def warning(
        self, path: Path, message: str, hint: str | None = None, location: Location | None = None, key: bool = False
    ) -> None:
        self.error(path, message, hint, key=key, location=location, severity="warning")

    def where(self, path: Path) -> str:
        return " > ".join(self.doc.describe(path))

    # -- expressions and values -----------------------------------------------------------------------

    def query(self, path: Path, source: Any, scope: Scope) -> Expression | None:
        if not isinstance(source, str):
            return None
        try:
            compiled = expressions.compile_query(source)
        except ExpressionSyntaxError as exc:
            self.error(path, exc.message, exc.hint, location=self.doc.location_in_scalar(path, exc.offset, exc.width))
            return None
        for problem in compiled.problems:
            at = self.doc.location_in_scalar(path, problem.offset, problem.width)
            self.error(path, problem.message, problem.hint, location=at)
        for chain, seen in _with_occurrence(compiled.references):
            references.check(self, path, source, chain, scope, jmespath=True, occurrence=seen)
        self._note_link_reads(path, source, compiled.data_reads)
        return Expression(compiled, self.doc.location(path), self.where(path))

    def template(self, path: Path, source: str, scope: Scope, url_path: bool = False) -> Template | None:
        try:
            compiled = expressions.compile_template(source, expressions.PATH if url_path else expressions.TEXT)
        except ExpressionSyntaxError as exc:
            self.error(path, exc.message, exc.hint, location=self.doc.location_in_scalar(path, exc.offset, exc.width))
            return None
        for chain, seen in _with_occurrence(compiled.references):
            references.check(self, path, source, chain, scope, jmespath=False, occurrence=seen)
        self._note_link_reads(path, source, compiled.data_reads)
        return compiled

    def _note_link_reads(self, path: Path, source: str, chains: tuple[Chain, ...]) -> None:
        self.link_reads.extend((path, source, chain) for chain in chains if EXTERNAL_DATA in chain[1:])

    def value(self, path: Path, data: Any, scope: Scope, url_path: bool = False) -> Value:
        """A YAML value whose strings are templates → a Value that renders the whole tree."""
        templates: list[Template] = []
        render = self._renderer(path, data, scope, url_path, templates)
        return Value(self.doc.location(path), self.where(path), render, tuple(templates))

    def _renderer(self, path: Path, data: Any, scope: Scope, url_path: bool, templates: list[Template]) -> Render:
        if isinstance(data, str) and expressions.is_template(data):
            compiled = self.template(path, data, scope, url_path)
            if compiled is None:
                return lambda scope: None
            templates.append(compiled)
            return compiled.render
        if isinstance(data, dict):
            parts = [
                (key, self._renderer((*path, key), item, scope, url_path, templates)) for key, item in data.items()
            ]
            if all(_is_constant(render) for _, render in parts):
                return _constant(data)
            return lambda scope: {key: render(scope) for key, render in parts}
        if isinstance(data, list):
            items = [self._renderer((*path, i), item, scope, url_path, templates) for i, item in enumerate(data)]
            if all(_is_constant(render) for render in items):
                return _constant(data)
            return lambda scope: [render(scope) for render in items]
        return _constant(data)

    def pairs(self, path: Path, data: Any, scope: Scope, url_path: bool = False) -> tuple[tuple[str, Value], ...]:
        """`headers:` or `params:`: each scalar value as text (`true` → "true"), compiled as a template."""
        if not isinstance(data, dict):
            return ()
        result = []
        for key, item in data.items():
            if isinstance(item, str | int | float | bool):
                text = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
                result.append((str(key), self.value((*path, key), text, scope, url_path)))
        return tuple(result)

    def duration(self, path: Path, data: Any, default: float) -> float:
        if data is None:
            return default
        try:
            return conversions.parse_duration(data)
        except conversions.ConversionError:
            return default  # the schema check has already said what is wrong


def _with_occurrence(chains: tuple[Chain, ...]) -> list[tuple[Chain, int]]:
    """Each chain with how many times it was read before (the same name twice: two places in the text)."""
    seen: dict[Chain, int] = {}
    result = []
    for chain in chains:
        result.append((chain, seen.get(chain, 0)))
        seen[chain] = seen.get(chain, 0) + 1
    return result


def _constant(data: Any) -> Render:
    def render(scope: Mapping[str, Any]) -> Any:
        return data

    render.constant = True  # type: ignore[attr-defined]
    return render


def _is_constant(render: Render) -> bool:
    return getattr(render, "constant", False) is True
