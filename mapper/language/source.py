"""YAML text → plain data plus the line and column of every key and value, with YAML's traps disarmed.

What is refused or kept literal, and why (each a real way to break a target system silently):
- aliases, anchors and tags (`&a`, `*a`, `!!python/...`): refused; a mapping is plain data.
- duplicate keys: refused (PyYAML keeps the last one without a word).
- YAML 1.1 booleans and numbers (`NO`, `on`, `yes`, `012345`, `1.10`, `0x1F`, `2024-01-01`): kept as the
  text typed. Only `true`/`false`, `null`/`~`, decimal integers without a leading zero and decimal numbers
  that read back exactly as typed become non-strings.
- more than one document, more than 1 MiB, nesting deeper than 64.

A value refused here is remembered (`Document.refused`), so that later checks do not pile their own
complaints about the placeholder on top of the one that says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import yaml
import yaml.composer
import yaml.resolver
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mapper.errors import Location, Problem, Problems

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?")
_IMPLICIT = "tag:wlmap,implicit"
_TAG_OR_ANCHOR = re.compile(r"(?:[!&][^\s]*[ \t]+)+")
_DEEP_HINT = "a mapping needs only a few levels; look for a long run of `[` or `{`"
# The line breaks PyYAML counts (https://yaml.org/spec/1.1/#id871136); str.splitlines() knows more (\v, \f, ...),
# which would put a problem on the wrong line.
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def split_lines(text: str) -> list[str]:
    lines = _BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class _Mark(NamedTuple):
    line: int  # 0-based, like PyYAML's marks
    column: int


class _At(Protocol):
    """Makes a located problem from a 0-based mark (PyYAML's or a _Mark)."""

    def __call__(self, mark: Any, message: str, hint: str | None = None, width: int = 1) -> Problem: ...


@dataclass(frozen=True)
class Span:
    """Where a node sits in the text: 1-based, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    style: str | None = None  # scalar style: None plain, "'" or '"' quoted, "|" or ">" block


@dataclass
class Document:
    file: str
    text: str
    data: Any
    values: dict[Path, Span]
    keys: dict[Path, Span]
    refused: set[Path] = field(default_factory=set)  # values replaced or dropped here: say nothing more about them
    incomplete: set[Path] = field(default_factory=set)  # mappings that lost keys to a refused merge key

    @cached_property
    def lines(self) -> list[str]:
        return split_lines(self.text)

    def line_text(self, line: int) -> str | None:
        lines = self.lines
        return lines[line - 1] if 0 < line <= len(lines) else None

    def is_refused(self, path: Path) -> bool:
        """True when a problem at `path` would only repeat one already reported while reading the YAML."""
        return path in self.incomplete or any(path[:n] in self.refused for n in range(len(path) + 1))

    def span(self, path: Path, key: bool = False) -> Span | None:
        """The span of `path` (its key when `key`), or of its nearest ancestor that has one."""
        if key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                return self.values[path]
            if not path:
                return None
            path = path[:-1]

    def location(self, path: Path, key: bool = False) -> Location:
        span = self.span(path, key)
        if span is None:
            return Location(self.file)
        width = span.end_column - span.column if span.end_line == span.line else 1
        return Location(self.file, span.line, span.column, max(1, width))

    def location_in_scalar(self, path: Path, offset: int, width: int = 1) -> Location:
        """The place of character `offset` of the string value at `path` (for errors inside expressions)."""
        span = self.values.get(path)
        if span is None:
            return self.location(path)
        raw = _raw_scalar(self.lines, span)
        line_offset, column = _scalar_offset(raw, span, offset)
        return Location(self.file, span.line + line_offset, column, max(1, width))

    def problem(self, path: Path, message: str, hint: str | None = None, key: bool = False) -> Problem:
        location = self.location(path, key)
        return Problem(
            location, message, path=self.describe(path), hint=hint, source_line=self.line_text(location.line)
        )

    def describe(self, path: Path) -> tuple[str, ...]:
        """The breadcrumb of a path in words: ('steps', 0, 'json') → ('step "update-incident"', 'json')."""
        words: list[str] = []
        data: Any = self.data
        index = 0
        while index < len(path):
            part = path[index]
            child = data.get(part) if isinstance(data, dict) and isinstance(part, str) else None
            if (
                part == "steps"
                and index + 1 < len(path)
                and isinstance(path[index + 1], int)
                and isinstance(child, list)
            ):
                position = path[index + 1]
                assert isinstance(position, int)
                item = child[position] if position < len(child) else None
                name = item.get("name") if isinstance(item, dict) else None
                words.append(f'step "{name}"' if isinstance(name, str) else f"step {position + 1}")
                data, index = item, index + 2
                continue
            if part == "connections" and index == 0 and index + 1 < len(path) and isinstance(child, dict):
                words.append(f'connection "{path[index + 1]}"')
                data, index = child.get(str(path[index + 1])), index + 2
                continue
            if isinstance(part, int):
                words.append(f"item {part + 1}")
                data = data[part] if isinstance(data, list) and part < len(data) else None
            else:
                words.append(part)
                data = child
            index += 1
        return tuple(words)


def _raw_scalar(lines: list[str], span: Span) -> list[str]:
    # The end is exclusive: a block scalar ends at column 1 of the line after it, which is not part of it.
    end = span.end_line - 1 if span.end_column == 1 and span.end_line > span.line else span.end_line
    return lines[span.line - 1 : end]


def _block_indent(raw: list[str]) -> int:
    """The indentation of a block scalar's content: the indicator's digit, else the first non-blank line's."""
    header = raw[0] if raw else ""
    digit = re.search(r"[|>][-+]?([1-9])|[|>]([1-9])[-+]?", header)
    body = raw[1:]
    first = next((x for x in body if x.strip(" \t")), "")
    detected = len(first) - len(first.lstrip(" "))
    if digit:
        parent = len(header) - len(header.lstrip(" "))
        # The digit counts from the parent node's indentation; for `key: |2` that is the key's column.
        return min(parent + int(digit.group(1) or digit.group(2)), detected) if first else detected
    return detected


def _scalar_offset(raw: list[str], span: Span, offset: int) -> tuple[int, int]:
    """Map a character offset in a scalar's value back to (line offset, 1-based column) in the YAML text."""
    if span.style in ("|", ">"):
        body = raw[1:]
        indent = _block_indent(raw)
        remaining = offset
        folded = span.style == ">"
        for index, line in enumerate(body):
            length = max(len(line) - indent, 0)
            if remaining <= length:
                return index + 1, indent + remaining + 1
            remaining -= length
            # A folded scalar turns the break before a run of blank lines into nothing (the blank lines are the
            # newlines); every other break is one character (a newline, or a space when folded).
            following_blank = index + 1 < len(body) and not body[index + 1].strip(" \t")
            if not (folded and line.strip(" \t") and following_blank):
                remaining -= 1
            if remaining < 0:
                return index + 1, indent + length + 1
        last = len(body)
        return max(last, 1), indent + 1
    # Flow scalars: walk the raw characters, counting decoded characters, so escapes and quotes shift right.
    quote = span.style if span.style in ("'", '"') else None
    line_index, col = 0, span.column - 1 + (1 if quote else 0)
    decoded = 0
    while decoded < offset and line_index < len(raw):
        line = raw[line_index]
        if col >= len(line.rstrip(" \t")) and line_index + 1 < len(raw):
            # A line break inside a flow scalar reads as one space; the next line's indentation is dropped.
            line_index += 1
            following = raw[line_index]
            col = len(following) - len(following.lstrip(" \t"))
            decoded += 1
            continue
        if col >= len(line):
            break
        char = line[col]
        if quote == '"' and char == "\\" and col == len(line) - 1 and line_index + 1 < len(raw):
            # An escaped line break: the value goes on at the next line's first non-blank, with nothing between.
            line_index += 1
            following = raw[line_index]
            col = len(following) - len(following.lstrip(" \t"))
            continue
        if quote == '"' and char == "\\":
            col += _escape_length(line, col)
        elif quote == "'" and char == "'" and line[col + 1 : col + 2] == "'":
            col += 2
        else:
            col += 1
        decoded += 1
    return line_index, col + 1


def _escape_length(line: str, col: int) -> int:
    nxt = line[col + 1 : col + 2]
    return {"x": 4, "u": 6, "U": 10}.get(nxt, 2)


try:
    from yaml._yaml import CParser  # libyaml, in every PyYAML wheel

    _FAST = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _FAST = False
# What PyYAML's reader refuses (it words the problem; libyaml would too, differently).
_CONTROL = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Checks:
    """Composes nodes only; never resolves tags, and notes aliases and anchors instead of following them."""

    aliases: dict[int, str]  # placeholder node → the alias it replaces
    anchored: dict[int, str]  # node → the anchor written on it

    if TYPE_CHECKING:  # supplied by the parser each loader is combined with

        def check_event(self, *choices: Any) -> bool: ...
        def get_event(self) -> Any: ...
        def peek_event(self) -> Any: ...
        def get_single_node(self) -> Node | None: ...
        def dispose(self) -> None: ...

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return _IMPLICIT

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.get_event()
            placeholder = ScalarNode(_IMPLICIT, "", event.start_mark, event.end_mark)
            self.aliases[id(placeholder)] = str(event.anchor)
            return placeholder
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        event.anchor = None  # never registered, so an alias can never expand to it
        node: Node | None = super().compose_node(parent, index)  # type: ignore[misc]
        if anchor is not None and node is not None:
            self.anchored[id(node)] = str(anchor)
        if isinstance(node, ScalarNode) and node.style == "":
            node.style = None  # libyaml says "" for a plain scalar, PyYAML None
        return node


class _Loader(_Checks, yaml.SafeLoader):
    """The pure-Python loader: it words syntax errors, and refuses control characters in its reader."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self.aliases, self.anchored = {}, {}


if _FAST:

    class _FastLoader(_Checks, yaml.composer.Composer, CParser, yaml.resolver.Resolver):
        """libyaml's C scanner and parser (several times faster) feeding the same Python composer and checks.

        Used first; on any problem the file is read again with `_Loader`, so messages are always the same.
        """

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.aliases, self.anchored = {}, {}


def _compose(text: str) -> tuple[Node | None, _Checks]:
    """The node tree: libyaml first; if it finds anything wrong, PyYAML again, which says what in our words."""
    if _FAST and not _CONTROL.search(text):
        fast = _FastLoader(text)
        try:
            return fast.get_single_node(), fast
        except (yaml.YAMLError, RecursionError):
            pass
        finally:
            fast.dispose()
    slow = _Loader(text)  # its reader refuses control characters already here
    try:
        return slow.get_single_node(), slow
    finally:
        slow.dispose()


def read(text: str | bytes, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML mapping file. Returns the document (None when the text cannot be read) and problems."""
    problems = Problems()
    whole = Location(file)
    if len(text) > MAX_BYTES // 4:  # a character is at most 4 bytes in UTF-8
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        if size > MAX_BYTES:
            problems.error(
                whole,
                f"the file is {size / MAX_BYTES:.1f} MiB; a mapping may be at most 1 MiB",
                "split it into several mappings, or move long texts out of it",
            )
            return None, problems.sorted()
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            problems.add(_not_utf8(raw, exc, file))
            return None, problems.sorted()
    lines = split_lines(text)

    def at(mark: Any, message: str, hint: str | None = None, width: int = 1) -> Problem:
        line = getattr(mark, "line", -1) + 1
        column = getattr(mark, "column", -1) + 1
        if line > len(lines) and lines:  # PyYAML marks the end of input one line past the last
            line, column = len(lines), len(lines[-1]) + 1
        line, column = max(line, 1), max(column, 1)
        source_line = lines[line - 1] if 0 < line <= len(lines) else None
        return Problem(Location(file, line, column, width), message, hint=hint, source_line=source_line)

    loader: _Checks | None = None
    try:
        root, loader = _compose(text)
    except yaml.MarkedYAMLError as exc:
        problems.add(_syntax_problem(exc, lines, at))
        return None, problems.sorted()
    except yaml.reader.ReaderError as exc:
        problems.add(_reader_problem(exc, text, at))
        return None, problems.sorted()
    except yaml.YAMLError as exc:
        problems.error(whole, f"the YAML cannot be read: {exc}")
        return None, problems.sorted()
    except RecursionError:
        problems.error(whole, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", _DEEP_HINT)
        return None, problems.sorted()

    values: dict[Path, Span] = {}
    keys: dict[Path, Span] = {}
    refused: set[Path] = set()
    incomplete: set[Path] = set()
    found: list[tuple[Problem, Path | None]] = []  # breadcrumbs need the whole document: added at the end

    def span_of(node: Node) -> Span:
        style = node.style if isinstance(node, ScalarNode) else None
        column = node.start_mark.column + 1
        # A node's mark starts at its tag or anchor; the value itself starts after them.
        prefix = _TAG_OR_ANCHOR.match(text, node.start_mark.index)
        if prefix:
            column += len(prefix.group(0))
        return Span(node.start_mark.line + 1, column, node.end_mark.line + 1, node.end_mark.column + 1, style)

    def build(node: Node, path: Path, depth: int) -> Any:
        values[path] = span_of(node)
        if id(node) in loader.anchored:
            anchor = loader.anchored[id(node)]
            found.append(
                (
                    at(
                        node.start_mark,
                        f"anchors (`&{anchor}`) are not allowed",
                        "write the value out in full where it is needed",
                        len(anchor) + 1,
                    ),
                    path,
                )
            )
        if id(node) in loader.aliases:
            alias = loader.aliases[id(node)]
            found.append(
                (
                    at(
                        node.start_mark,
                        f"aliases (`*{alias}`) are not allowed",
                        "write the value out in full",
                        len(alias) + 1,
                    ),
                    path,
                )
            )
            refused.add(path)
            return None
        if depth > MAX_DEPTH:
            found.append(
                (at(node.start_mark, f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", _DEEP_HINT), None)
            )
            refused.add(path)
            return None
        if node.tag != _IMPLICIT:
            found.append((_tag_problem(node, at), path))
            refused.add(path)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [build(child, (*path, index), depth + 1) for index, child in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if node.flow_style and text[node.start_mark.index : node.start_mark.index + 2] == "{{":
            raw = text[node.start_mark.index : node.end_mark.index]
            found.append(
                (at(node.start_mark, "a value that starts with `{{` must be quoted", _quote_hint(raw), 2), path)
            )
            refused.add(path)
            return raw
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                found.append(
                    (
                        at(
                            key_node.start_mark,
                            "a key must be a plain name, not a list or a mapping",
                            "quote the key if it must contain `[` or `{`",
                        ),
                        path,
                    )
                )
                incomplete.add(path)
                continue
            key = str(key_node.value)
            if key_node.tag != _IMPLICIT:
                found.append((_tag_problem(key_node, at), (*path, key)))
            if key == "<<" and key_node.style is None:
                found.append(
                    (
                        at(key_node.start_mark, "merge keys (`<<`) are not allowed", "write the keys out in full", 2),
                        path,
                    )
                )
                incomplete.add(path)
                continue
            if key in result:
                first = keys[(*path, key)]
                found.append(
                    (
                        at(
                            key_node.start_mark,
                            f"duplicate key `{key}` (first set on line {first.line})",
                            "remove one of them; YAML would silently keep only the last",
                            len(key),
                        ),
                        (*path, key),
                    )
                )
                continue
            keys[(*path, key)] = span_of(key_node)
            result[key] = build(value_node, (*path, key), depth + 1)
        return result

    data = build(root, (), 0) if root is not None else None
    document = Document(file, text, data, values, keys, refused, incomplete)
    for problem, path in found:
        problems.add(replace(problem, path=document.describe(path)) if path else problem)
    return document, problems.sorted()


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    if node.style is not None:
        return value
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value) and repr(float(value)) == value.lstrip("+"):
        return float(value)
    return value


def _tag_problem(node: Node, at: _At) -> Problem:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return at(
        node.start_mark,
        f"tags such as `{tag}` are not allowed",
        "remove the tag; quote the value if it must stay text",
        width=len(tag),
    )


def _quote_hint(raw: str) -> str:
    shown = raw if len(raw) <= 60 and "\n" not in raw else "{{ ... }}"
    quote = "'" if '"' in shown else '"'
    return f"put the whole value in quotes: {quote}{shown}{quote} (an unquoted `{{` starts a YAML mapping)"


def _not_utf8(raw: bytes, exc: UnicodeDecodeError, file: str) -> Problem:
    before = raw[: exc.start]
    line = before.count(b"\n") + 1
    line_start = before.rfind(b"\n") + 1
    column = len(raw[line_start : exc.start].decode("utf-8", "replace")) + 1
    line_end = raw.find(b"\n", exc.start)
    shown = raw[line_start : line_end if line_end >= 0 else len(raw)].decode("utf-8", "replace").rstrip("\r")
    byte = raw[exc.start]
    return Problem(
        Location(file, line, column),
        f"the file is not UTF-8 text: byte 0x{byte:02X} cannot be read",
        hint="save the file as UTF-8 (it was probably saved as Latin-1 or Windows-1252)",
        source_line=shown,
    )


def _reader_problem(exc: yaml.reader.ReaderError, text: str, at: _At) -> Problem:
    position = max(0, min(exc.position, len(text)))
    before = text[:position]
    lines = split_lines(before + "x")
    mark = _Mark(len(lines) - 1, len(lines[-1]) - 1)
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
    return at(
        mark,
        f"the file contains the control character U+{code:04X}, which YAML does not allow",
        "delete it (it is often invisible: retype the line)",
    )


_PLAIN_YAML_ERRORS = (
    ("found character '\\t' that cannot start any token", "a tab character cannot indent YAML", "indent with spaces"),
    (
        "mapping values are not allowed here",
        "a `key: value` cannot start here",
        "check the indentation, or quote the value if it contains ': '",
    ),
    ("found duplicate anchor", "anchors are not allowed", "write the value out in full"),
    ("found undefined alias", "aliases are not allowed", "write the value out in full"),
    (
        "expected <block end>, but found '-'",
        "a list item `-` cannot start here",
        "indent list items under their key, or check the indentation of the line above",
    ),
    (
        "expected <block end>, but found ']'",
        "a `]` that closes nothing",
        "remove it, or check the `[` that goes with it",
    ),
    (
        "expected <block end>, but found '}'",
        "a `}` that closes nothing",
        "remove it, or check the `{` that goes with it",
    ),
    ("expected <block end>, but found", "the indentation is off here", "align this line with the keys around it"),
    ("expected <block mapping start>", "the indentation is off here", "align this line with the keys around it"),
    (
        "expected '<document start>'",
        "unexpected text after the end of the mapping",
        "check for an extra `]` or `}`, or for a line that is not indented like the others",
    ),
    ("while scanning a quoted scalar", "a quoted value is never closed", "add the closing quote"),
    ("found unexpected end of stream", "the file ends in the middle of a value", "close the open quote or bracket"),
    (
        "expected a single document",
        "a mapping file holds one YAML document",
        "remove the `---` separator and what follows, or split the file",
    ),
    (
        "found unknown escape character",
        "unknown escape sequence in a double-quoted value",
        "use single quotes, or write \\\\ for a backslash",
    ),
    ("found character '%' that cannot start any token", "a value cannot start with `%`", "quote the value"),
    ("found character '@' that cannot start any token", "a value cannot start with `@`", "quote the value"),
    ("found character '`' that cannot start any token", "a value cannot start with a backtick", "quote the value"),
    (
        "could not find expected ':'",
        "expected `key: value` here",
        "add the missing `:`, or check for an unclosed quote",
    ),
)

_UNQUOTED_TEMPLATE = re.compile(r"(?:^|:|-)[ \t]+(\{\{)")


def _syntax_problem(exc: yaml.MarkedYAMLError, lines: list[str], at: _At) -> Problem:
    context = exc.context or ""
    problem = exc.problem or ""
    mark = exc.problem_mark or exc.context_mark
    # An unquoted `{{ x }} more` reads as a mapping followed by junk: name the real mistake at its `{{`.
    line_no = getattr(mark, "line", -1)
    if 0 <= line_no < len(lines) and "quoted scalar" not in context:
        line = lines[line_no]
        unquoted = _UNQUOTED_TEMPLATE.search(line)
        if unquoted and not re.match(r"\s*#", line):
            column = unquoted.start(1)
            raw = line[column:].split(" #")[0].strip()
            return at(_Mark(line_no, column), "a value that starts with `{{` must be quoted", _quote_hint(raw), 2)
    if context.startswith("while parsing a flow") and exc.context_mark is not None:
        bracket = "[" if "sequence" in context else "{"
        closing = "]" if bracket == "[" else "}"
        return at(
            exc.context_mark,
            f"the `{bracket}` opened here is never closed",
            f"add the closing `{closing}` (or put commas between the items); "
            f"to use `{bracket}` as text, quote the value",
        )
    if "quoted scalar" in context and "end of stream" in problem and exc.context_mark is not None:
        # An unclosed quote is found at the end of the file; the place to fix is where it opened.
        return at(exc.context_mark, "a quoted value is never closed", "add the closing quote")
    if "while scanning a simple key" in context and exc.context_mark is not None:
        mark = exc.context_mark
    opened = _swallowing_quote(lines, mark)
    if opened is not None:
        return at(opened, "a quoted value is never closed", "add the closing quote on this line")
    if "mapping values are not allowed here" in problem and 0 <= line_no < len(lines):
        return _colon_problem(lines, line_no, getattr(mark, "column", 0), at)
    text = f"{context} {problem}"
    for needle, message, hint in _PLAIN_YAML_ERRORS:
        if needle in text:
            width = 3 if needle == "expected a single document" else 1  # underline the whole `---`
            return at(mark, message, hint, width)
    plain = (problem or context or "the YAML cannot be read").strip()
    return at(mark, f"the YAML cannot be read: {plain}")


def _swallowing_quote(lines: list[str], mark: Any) -> _Mark | None:
    """The start of a quoted value that ran on over lines that look like `key: value` (a missing closing quote)."""
    if mark is None:
        return None
    text = "\n".join(lines)
    last: Any = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            if isinstance(token, yaml.ScalarToken):
                last = token
    except yaml.YAMLError:
        pass
    if last is None or last.style not in ('"', "'") or last.start_mark.line == last.end_mark.line:
        return None
    swallowed = lines[last.start_mark.line + 1 : last.end_mark.line + 1]
    if not any(re.match(r"\s*-?\s*[\w.-]+:(\s|$)", line) for line in swallowed):
        return None
    return _Mark(last.start_mark.line, last.start_mark.column)


def _colon_problem(lines: list[str], line_no: int, column: int, at: _At) -> Problem:
    """`mapping values are not allowed here`: a value with `: ` in it, or a line indented too far."""
    line = lines[line_no]
    indent = len(line) - len(line.lstrip(" "))
    own_key = re.match(r"\s*(?:-\s+)?([^\s:#][^:#]*?):\s", line)
    if own_key and column > own_key.end(1):
        value = line[own_key.end() :].split(" #")[0].strip()
        quote = "'" if '"' in value else '"'
        return at(
            _Mark(line_no, column),
            "a value that contains `: ` must be quoted",
            f"write {own_key.group(1)}: {quote}{value}{quote}",
        )
    above = next((x for x in reversed(lines[:line_no]) if x.strip() and not x.lstrip().startswith("#")), "")
    above_indent = len(above) - len(above.lstrip(" "))
    key = line.strip().split(":")[0]
    if indent > above_indent:
        above_key = above.strip().lstrip("- ").split(":")[0]
        return at(
            _Mark(line_no, indent),
            "this line is indented further than the line above it",
            f"align `{key}:` with `{above_key}:` (YAML reads it as the rest of the value above)",
        )
    return at(
        _Mark(line_no, column),
        "a `key: value` cannot start here",
        "check the indentation, or quote the value if it contains `: `",
    )
