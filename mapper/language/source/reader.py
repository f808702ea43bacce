"""YAML text → Document: plain data with the span of every key and value; what YAML would do silently, refused."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mapper.errors import Location, Problem, Problems
from mapper.language.source.document import Document, Path, split_lines
from mapper.language.source.loaders import IMPLICIT, Checks, compose
from mapper.language.source.positions import Span
from mapper.language.source.problems import (
    DEEP_HINT,
    At,
    not_utf8,
    quote_hint,
    reader_problem,
    syntax_problem,
    tag_problem,
)

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?")
_TAG_OR_ANCHOR = re.compile(r"(?:[!&][^\s]*[ \t]+)+")


def read(text: str | bytes, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML mapping file. Returns the document (None when the text cannot be read) and problems."""
    problems = Problems()
    decoded = _decoded(text, file, problems)
    if decoded is None:
        return None, problems.sorted()
    at = At(file, split_lines(decoded))
    composed = _composed(decoded, at, problems)
    if composed is None:
        return None, problems.sorted()
    root, loader = composed
    builder = _Builder(decoded, loader, at)
    data = builder.build(root, (), 0) if root is not None else None
    document = Document(file, decoded, data, builder.values, builder.keys, builder.refused, builder.incomplete)
    for problem, path in builder.found:  # breadcrumbs need the whole document: added at the end
        problems.add(replace(problem, path=document.describe(path)) if path else problem)
    return document, problems.sorted()


def _decoded(text: str | bytes, file: str, problems: Problems) -> str | None:
    """The text, if it is at most MAX_BYTES of UTF-8."""
    if len(text) > MAX_BYTES // 4:  # a character is at most 4 bytes in UTF-8
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        if size > MAX_BYTES:
            problems.error(
                Location(file),
                f"the file is {size / MAX_BYTES:.1f} MiB; a mapping may be at most 1 MiB",
                "split it into several mappings, or move long texts out of it",
            )
            return None
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(not_utf8(text, exc, file))
        return None


def _composed(text: str, at: At, problems: Problems) -> tuple[Node | None, Checks] | None:
    """The node tree and the loader's notes, or None with the problem that stopped it."""
    try:
        return compose(text)
    except yaml.MarkedYAMLError as exc:
        problems.add(syntax_problem(exc, at.lines, at))
    except yaml.reader.ReaderError as exc:
        problems.add(reader_problem(exc, text, at))
    except yaml.YAMLError as exc:
        problems.error(Location(at.file), f"the YAML cannot be read: {exc}")
    except RecursionError:
        problems.error(Location(at.file), f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", DEEP_HINT)
    return None


class _Builder:
    """Nodes → plain data, noting each node's span, and refusing anchors, aliases, tags, merges and duplicates."""

    def __init__(self, text: str, loader: Checks, at: At) -> None:
        self.text, self.loader, self.at = text, loader, at
        self.values: dict[Path, Span] = {}
        self.keys: dict[Path, Span] = {}
        self.refused: set[Path] = set()
        self.incomplete: set[Path] = set()
        self.found: list[tuple[Problem, Path | None]] = []

    def span_of(self, node: Node) -> Span:
        style = node.style if isinstance(node, ScalarNode) else None
        column = node.start_mark.column + 1
        # A node's mark starts at its tag or anchor; the value itself starts after them.
        prefix = _TAG_OR_ANCHOR.match(self.text, node.start_mark.index)
        if prefix:
            column += len(prefix.group(0))
        return Span(node.start_mark.line + 1, column, node.end_mark.line + 1, node.end_mark.column + 1, style)

    def refuse(self, path: Path, problem: Problem) -> None:
        self.found.append((problem, path))
        self.refused.add(path)

    def build(self, node: Node, path: Path, depth: int) -> Any:
        self.values[path] = self.span_of(node)
        if id(node) in self.loader.anchored:
            anchor = self.loader.anchored[id(node)]
            hint = "write the value out in full where it is needed"
            problem = self.at(node.start_mark, f"anchors (`&{anchor}`) are not allowed", hint, len(anchor) + 1)
            self.found.append((problem, path))
        if id(node) in self.loader.aliases:
            alias = self.loader.aliases[id(node)]
            message = f"aliases (`*{alias}`) are not allowed"
            self.refuse(path, self.at(node.start_mark, message, "write the value out in full", len(alias) + 1))
            return None
        if depth > MAX_DEPTH:
            message = f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)"
            self.found.append((self.at(node.start_mark, message, DEEP_HINT), None))
            self.refused.add(path)
            return None
        if node.tag != IMPLICIT:
            self.refuse(path, tag_problem(node, self.at))
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [self.build(child, (*path, index), depth + 1) for index, child in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        return self.mapping(node, path, depth)

    def mapping(self, node: MappingNode, path: Path, depth: int) -> Any:
        if node.flow_style and self.text[node.start_mark.index : node.start_mark.index + 2] == "{{":
            raw = self.text[node.start_mark.index : node.end_mark.index]
            message = "a value that starts with `{{` must be quoted"
            self.refuse(path, self.at(node.start_mark, message, quote_hint(raw), 2))
            return raw
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path, result)
            if key is not None:
                self.keys[(*path, key)] = self.span_of(key_node)
                result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def key(self, node: Node, path: Path, siblings: dict[str, Any]) -> str | None:
        """The key's text, or None when it is refused (not text, a merge key `<<`, a duplicate)."""
        if not isinstance(node, ScalarNode):
            hint = "quote the key if it must contain `[` or `{`"
            self.found.append(
                (self.at(node.start_mark, "a key must be a plain name, not a list or a mapping", hint), path)
            )
            self.incomplete.add(path)
            return None
        key = str(node.value)
        if node.tag != IMPLICIT:
            self.found.append((tag_problem(node, self.at), (*path, key)))
        if key == "<<" and node.style is None:
            problem = self.at(node.start_mark, "merge keys (`<<`) are not allowed", "write the keys out in full", 2)
            self.found.append((problem, path))
            self.incomplete.add(path)
            return None
        if key in siblings:
            first = self.keys[(*path, key)]
            message = f"duplicate key `{key}` (first set on line {first.line})"
            hint = "remove one of them; YAML would silently keep only the last"
            self.found.append((self.at(node.start_mark, message, hint, len(key)), (*path, key)))
            return None
        return key


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
