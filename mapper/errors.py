"""Located problems: the one error type for everything an integration owner can fix.

    Problem            one finding: where (file, line, column), what, in which part of the mapping, a hint
    MappingError       raised with every Problem found in a mapping; carries them all

Lines and columns are 1-based (PyYAML's marks are 0-based: convert where they are read, in `source`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

Severity = Literal["error", "warning"]


class Location(NamedTuple):  # a NamedTuple: ordered like (file, line, column) and cheap to define
    file: str
    line: int = 0  # 0: the file as a whole
    column: int = 0
    width: int = 1  # how many characters the caret underlines

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def shifted(self, line_offset: int, column: int, width: int = 1) -> Location:
        """A place inside a scalar that starts at this location (line_offset 0 = the same line)."""
        return self._replace(line=self.line + line_offset, column=column, width=max(1, width))


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str
    path: tuple[str, ...] = ()  # the breadcrumb in plain words: ('step "update-incident"', "json", "seconds")
    hint: str | None = None
    severity: Severity = "error"
    source_line: str | None = None  # the text of the offending line, for the caret display

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.location.file, self.location.line, self.location.column, self.message)

    @property
    def where(self) -> str:
        return " > ".join(self.path)


class MappingError(Exception):
    """A mapping (or a test file) that cannot be used, with every problem found in it."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.sort_key)
        first = self.problems[0] if self.problems else None
        super().__init__(f"{first.location}: {first.message}" if first else "invalid mapping")

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The hint for a name that does not exist: the closest candidate, when one is close enough."""
    import difflib  # only on the way to a message

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass
class Problems:
    """Collects problems during one load; `error()` and `warning()` take the location they know."""

    items: list[Problem] = field(default_factory=list)
    _crumbs: list[str] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        if self._crumbs and not problem.path:
            problem = replace(problem, path=tuple(self._crumbs))
        self.items.append(problem)

    def error(self, location: Location, message: str, hint: str | None = None, path: tuple[str, ...] = ()) -> None:
        self.add(Problem(location, message, path=path, hint=hint))

    def warning(self, location: Location, message: str, hint: str | None = None, path: tuple[str, ...] = ()) -> None:
        self.add(Problem(location, message, path=path, hint=hint, severity="warning"))

    @contextmanager
    def within(self, crumb: str) -> Iterator[None]:
        """Name the part of the mapping being checked, so every problem found inside carries it."""
        self._crumbs.append(crumb)
        try:
            yield
        finally:
            self._crumbs.pop()

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.items)

    def sorted(self) -> list[Problem]:
        return sorted(self.items, key=lambda p: p.sort_key)


def as_text(problems: Iterable[Problem]) -> str:
    blocks = []
    for problem in problems:
        label = "warning: " if problem.severity == "warning" else ""
        lines = [f"{problem.location}: {label}{problem.message}"]
        if problem.source_line is not None and problem.location.line:
            number = str(problem.location.line)
            pad = " " * len(number)
            shown = _visible(problem.source_line)
            lines.append(f"   {number} | {shown}")
            width = max(1, min(problem.location.width, max(1, len(shown) - problem.location.column + 1)))
            lines.append(f"   {pad} | {' ' * (problem.location.column - 1)}{'^' * width}")
        # A lone top-level key the message already names in backticks would only repeat it.
        if problem.path and not (len(problem.path) == 1 and f"`{problem.path[0]}`" in problem.message):
            lines.append(f"  in: {problem.where}")
        if problem.hint:
            lines.append(f"  hint: {problem.hint}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _visible(line: str) -> str:
    """The line as it can be shown: a tab as one space, other control characters as their symbol (␇)."""
    return "".join(
        " " if c == "\t" else chr(0x2400 + ord(c)) if ord(c) < 0x20 else "\u2421" if c == "\x7f" else c for c in line
    )
