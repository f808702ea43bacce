"""Parse and check GraphQL executable documents (October 2021 spec) without importing graphql-core."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, TypeVar

MAX_NESTING = 200  # same limit as graphql-core; counts selections, lists, objects and list types
_T = TypeVar("_T")


class GraphQLSyntaxError(Exception):
    """A problem in a GraphQL document, located by 1-based line and column within the query text."""

    def __init__(self, message: str, line: int, column: int, length: int = 1) -> None:
        super().__init__(message, line, column, length)
        self.message, self.line, self.column, self.length = message, line, column, max(1, length)

    def __str__(self) -> str:
        return f"{self.message} (line {self.line}, column {self.column})"


@dataclass(frozen=True)
class VariableRef:
    name: str
    line: int
    column: int


@dataclass(frozen=True)
class EnumValue:  # an unquoted argument value such as ACTIVE, kept apart from strings
    name: str


class Directive(NamedTuple):
    name: str
    arguments: tuple[tuple[str, Any], ...]
    line: int
    column: int


class VariableDefinition(NamedTuple):
    name: str
    type: str
    required: bool
    has_default: bool
    line: int
    column: int
    default: Any = None
    directives: tuple[Directive, ...] = ()


class Field(NamedTuple):
    name: str
    alias: str | None
    response_key: str
    arguments: tuple[tuple[str, Any], ...]
    selections: tuple[Selection, ...]
    line: int
    column: int
    directives: tuple[Directive, ...] = ()


class InlineFragment(NamedTuple):
    type_condition: str | None
    selections: tuple[Selection, ...]
    line: int
    column: int
    directives: tuple[Directive, ...] = ()


class FragmentSpread(NamedTuple):
    name: str
    line: int
    column: int
    directives: tuple[Directive, ...] = ()


Selection = Field | InlineFragment | FragmentSpread


class Operation(NamedTuple):
    kind: str
    name: str | None
    variables: tuple[VariableDefinition, ...]
    selections: tuple[Selection, ...]
    line: int
    column: int
    directives: tuple[Directive, ...] = ()


class FragmentDefinition(NamedTuple):
    name: str
    type_condition: str
    selections: tuple[Selection, ...]
    line: int
    column: int
    directives: tuple[Directive, ...] = ()


class Document(NamedTuple):
    operations: tuple[Operation, ...]
    fragments: tuple[FragmentDefinition, ...] = ()

    def fragment(self, name: str) -> FragmentDefinition | None:
        return next((f for f in self.fragments if f.name == name), None)


class Node(NamedTuple):  # one response key of a merged selection; children is None for a leaf
    field_name: str
    children: dict[str, Node] | None
    type_conditions: frozenset[str] = frozenset()


class _Tok(NamedTuple):
    kind: str  # a punctuator such as "{" or "...", or one of: name int float string eof
    value: str
    start: int
    end: int


_NEWLINE = re.compile(r"\r\n|[\n\r]")
_IGNORED = re.compile(r"(?:[ \t,\ufeff\n\r]|#(?:[^\r\n\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*)*")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_CHUNK = {'"': re.compile(r'[^"\\\r\n\ud800-\udfff]+'), '"""': re.compile(r'[^"\\\ud800-\udfff]+')}
_DIGITS = re.compile(r"[0-9]+")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_UVAR = re.compile(r"\\u\{([0-9A-Fa-f]{1,8})\}")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_CHARS = {"\n": "a line break", "\r": "a line break", " ": "a space", "\t": "a tab"}
_VALUE_START = ("[", "{", "int", "float", "string", "name", "$")
_OPERATIONS = ("query", "mutation", "subscription")
_DEFINITION = "'query', 'mutation', 'subscription', 'fragment' or '{'"


def _scalar(code: int) -> bool:
    return 0 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF


def _dedent_block(raw: str) -> str:  # the spec's BlockStringValue()
    lines = _NEWLINE.split(raw)
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines]
    filled = [i for i, line in enumerate(lines) if widths[i] < len(line)]
    indent = min((widths[i] for i in filled if i), default=0)
    lines = [line[indent:] if i else line for i, line in enumerate(lines)]
    return "\n".join(lines[filled[0] : filled[-1] + 1]) if filled else ""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos, self.depth = text, 0, 0
        self.line_starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
        self.tok = self.lex()

    def loc(self, pos: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.line_starts, pos) - 1
        return index + 1, pos - self.line_starts[index] + 1

    def error(self, message: str, pos: int, length: int = 1) -> GraphQLSyntaxError:
        return GraphQLSyntaxError(message, *self.loc(pos), length)

    def char(self, pos: int) -> str:
        c = self.text[pos : pos + 1]
        if not c or c in _CHARS:
            return _CHARS.get(c, "end of query")
        quote = '"' if c == "'" else "'"
        return f"{quote}{c}{quote}" if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}"

    def unexpected(self, expected: str) -> GraphQLSyntaxError:
        tok = self.tok
        found = {"eof": "end of query", "string": "a string"}.get(tok.kind, f"'{tok.value}'")
        found = f"the number {tok.value}" if tok.kind in ("int", "float") else found
        width = len(_NEWLINE.split(self.text[tok.start : tok.end])[0])
        return self.error(f"expected {expected}, found {found}", tok.start, width)

    def lex(self) -> _Tok:
        s, n = self.text, len(self.text)
        m = _IGNORED.match(s, self.pos)
        i = self.pos = m.end() if m else self.pos
        c = s[i : i + 1]
        if not c:
            return _Tok("eof", "", n, n)
        if c in "!$&()[]{}:=@|":
            tok = _Tok(c, c, i, i + 1)
        elif s.startswith("...", i):
            tok = _Tok("...", "...", i, i + 3)
        elif m := _NAME.match(s, i):
            tok = _Tok("name", m.group(), i, m.end())
        elif c == "-" or "0" <= c <= "9":
            tok = self.number(i)
        elif c == '"':
            tok = self.string(i, '"""' if s.startswith('"""', i) else '"')
        elif c == "'":
            raise self.error("unexpected single quote ('); strings must use double quotes (\")", i)
        elif s.startswith("..", i):
            raise self.error("found '..'; did you mean '...'?", i, 2)
        elif c == "." and (m := _DIGITS.match(s, i + 1)):
            raise self.error(f"a number cannot start with '.'; did you mean '0.{m.group()}'?", i)
        else:
            raise self.error(f"unexpected character {self.char(i)}", i)
        self.pos = tok.end
        return tok

    def number(self, i: int) -> _Tok:  # error positions follow graphql-core's lexer
        s = self.text
        if not (m := _NUMBER.match(s, i)):
            raise self.error(f"expected a digit after '-', found {self.char(i + 1)}", i + 1)
        j, fraction, exponent = m.end(), m.group(1), m.group(2)
        c = s[j : j + 1]
        if not c or not c.isascii() or not (c.isalnum() or c in "._"):
            return _Tok("float" if fraction or exponent else "int", s[i:j], i, j)
        if c.isdigit():
            raise self.error(f"unexpected digit '{c}' after a leading 0; numbers cannot start with 0", j)
        if (c == "." and not fraction and not exponent) or (c in "eE" and not exponent):
            k = j + 2 if c in "eE" and s.startswith(("+", "-"), j + 1) else j + 1
            raise self.error(f"expected a digit after '{s[i:k]}', found {self.char(k)}", k)
        hint = "; names cannot start with a digit" if c != "." else ""
        raise self.error(f"unexpected {self.char(j)} right after the number {s[i:j]}{hint}", j)

    def escape(self, j: int) -> tuple[str, int]:
        s = self.text
        kind = s[j + 1 : j + 2]
        if kind in _ESCAPES:
            return _ESCAPES[kind], 2
        if kind != "u":
            bad = "\\" + kind if kind not in "\r\n" else "\\"
            raise self.error(f"invalid escape sequence '{bad}' in string; use '\\\\' for a backslash", j)
        if s.startswith("{", j + 2):
            m = _UVAR.match(s, j)
            if m and _scalar(int(m.group(1), 16)):
                return chr(int(m.group(1), 16)), m.end() - j
            bad = s[j : (s.find("}", j, j + 13) + 1) or j + 12]
        else:
            hi = int(s[j + 2 : j + 6], 16) if _HEX4.fullmatch(s, j + 2, j + 6) else -1
            if _scalar(hi):
                return chr(hi), 6
            if 0xD800 <= hi <= 0xDBFF and s.startswith("\\u", j + 6) and _HEX4.fullmatch(s, j + 8, j + 12):
                lo = int(s[j + 8 : j + 12], 16)
                if 0xDC00 <= lo <= 0xDFFF:
                    return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)), 12
            bad = s[j : j + 6]
        bad = re.split(r'[\r\n"]', bad)[0]
        raise self.error(f"invalid unicode escape sequence '{bad}' in string", j, len(bad))

    def string(self, i: int, quote: str) -> _Tok:
        s, j, parts, chunk = self.text, i + len(quote), [], _CHUNK[quote]
        while True:
            if m := chunk.match(s, j):
                parts.append(m.group())
                j = m.end()
            if j >= len(s) or (s[j] in "\r\n" and quote == '"'):
                line, column = self.loc(i)
                where = "" if quote == '"""' else " on the same line"
                raise self.error(
                    f"unterminated string (the string that starts at line {line}, column "
                    f"{column} needs a closing {quote}{where})",
                    j,
                )
            if s.startswith(quote, j):
                value = "".join(parts)
                return _Tok("string", _dedent_block(value) if quote == '"""' else value, i, j + len(quote))
            if quote == '"""' and s.startswith('\\"""', j):
                part, size = '"""', 4
            elif s[j] == "\\" and quote == '"':
                part, size = self.escape(j)
            elif s[j] in '"\\':
                part, size = s[j], 1
            elif "\ud800" <= s[j] <= "\udbff" and "\udc00" <= s[j + 1 : j + 2] <= "\udfff":
                part, size = s[j : j + 2], 2
            else:
                raise self.error(f"invalid character {self.char(j)} in string", j)
            parts.append(part)
            j += size

    def advance(self) -> _Tok:
        tok, self.tok = self.tok, self.lex()
        return tok

    def expect(self, kind: str, expected: str) -> _Tok:
        if self.tok.kind != kind:
            raise self.unexpected(expected)
        return self.advance()

    def name(self, expected: str) -> str:
        return self.expect("name", expected).value

    def keyword(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.value == word

    def enter(self, levels: int) -> None:
        self.depth += levels
        if self.depth > MAX_NESTING:
            raise self.error(f"the query is nested more than {MAX_NESTING} levels deep", self.tok.start)

    def many(
        self, close: str, what: str, item: str, starts: tuple[str, ...], parse: Callable[[], _T], empty_ok: bool = False
    ) -> tuple[_T, ...]:
        nested = int(close != ")")  # selections, lists and objects count as nesting; argument lists do not
        self.enter(nested)
        opening = self.advance()
        items: list[_T] = []
        while self.tok.kind != close or not (items or empty_ok):
            if self.tok.kind not in starts:
                if self.tok.kind == close or not (items or empty_ok):
                    empty = f" ({what} cannot be empty)" if self.tok.kind == close else ""
                    raise self.unexpected(item + empty)
                line = self.loc(opening.start)[0]
                either = "" if self.tok.kind == "eof" else f"{item} or "
                raise self.unexpected(f"{either}'{close}' to close {what} that starts at line {line}")
            items.append(parse())
        self.advance()
        self.depth -= nested
        return tuple(items)

    def document(self) -> Document:
        operations: list[Operation] = []
        fragments: list[FragmentDefinition] = []
        if self.tok.kind == "eof":
            raise self.error(f"the query is empty; expected {_DEFINITION}", self.tok.start)
        while self.tok.kind != "eof":
            if self.tok.kind == "{" or (self.tok.kind == "name" and self.tok.value in _OPERATIONS):
                operations.append(self.operation())
            elif self.keyword("fragment"):
                fragments.append(self.fragment_definition())
            else:
                raise self.unexpected(_DEFINITION)
        return Document(tuple(operations), tuple(fragments))

    def operation(self) -> Operation:
        start = self.tok.start
        if self.tok.kind == "{":
            return Operation("query", None, (), self.selection_set(""), *self.loc(start))
        kind = self.advance().value
        name = self.advance().value if self.tok.kind == "name" else None
        variables: tuple[VariableDefinition, ...] = ()
        if self.tok.kind == "(":
            variables = self.many(")", "the variable list", "a variable such as $id", ("$",), self.variable)
        directives = self.directives(False)
        selections = self.selection_set(f"{kind} {name}" if name else kind)
        return Operation(kind, name, variables, selections, *self.loc(start), directives)

    def variable(self) -> VariableDefinition:
        start = self.advance().start
        name = self.name("a variable name after '$'")
        self.expect(":", f"':' and a type after '${name}'")
        type_ = self.type_reference()
        has_default = self.tok.kind == "="
        if has_default:
            self.advance()
        default = self.value(True) if has_default else None
        required = type_.endswith("!") and not has_default
        return VariableDefinition(name, type_, required, has_default, *self.loc(start), default, self.directives(True))

    def type_reference(self) -> str:
        if self.tok.kind == "[":
            line = self.loc(self.advance().start)[0]
            self.enter(1)
            type_ = f"[{self.type_reference()}]"
            self.depth -= 1
            self.expect("]", f"']' to close the list type that starts at line {line}")
        else:
            type_ = self.name("a type name such as ID or String")
        return type_ + self.advance().value if self.tok.kind == "!" else type_

    def selection_set(self, owner: str) -> tuple[Selection, ...]:
        if self.tok.kind != "{":
            raise self.unexpected(f"'{{' to start the selection of {owner}" if owner else "'{'")
        return self.many("}", "the selection", "a field name", ("name", "..."), self.selection)

    def selection(self) -> Selection:
        start = self.advance()
        if start.kind == "...":
            return self.fragment(start.start)
        alias, name = None, start.value
        if self.tok.kind == ":":
            self.advance()
            alias, name = name, self.name(f"a field name after '{name}:'")
        arguments, directives = self.arguments(False), self.directives(False)
        selections = self.selection_set("") if self.tok.kind == "{" else ()
        return Field(name, alias, alias or name, arguments, selections, *self.loc(start.start), directives)

    def fragment(self, start: int) -> InlineFragment | FragmentSpread:
        type_condition = None
        if self.keyword("on"):
            self.advance()
            type_condition = self.name("a type name after 'on'")
        elif self.tok.kind == "name":
            name = self.advance().value
            return FragmentSpread(name, *self.loc(start), self.directives(False))
        elif self.tok.kind not in ("{", "@"):
            raise self.unexpected("a fragment name, 'on' or '{' after '...'")
        directives = self.directives(False)
        selections = self.selection_set("the inline fragment")
        return InlineFragment(type_condition, selections, *self.loc(start), directives)

    def fragment_definition(self) -> FragmentDefinition:
        start = self.advance().start
        if self.keyword("on"):
            raise self.error("a fragment cannot be named 'on'", self.tok.start, 2)
        name = self.name("a fragment name after 'fragment'")
        if not self.keyword("on"):
            raise self.unexpected(f"'on' after the fragment name '{name}'")
        self.advance()
        type_condition = self.name("a type name after 'on'")
        directives = self.directives(False)
        selections = self.selection_set(f"fragment {name}")
        return FragmentDefinition(name, type_condition, selections, *self.loc(start), directives)

    def arguments(self, const: bool) -> tuple[tuple[str, Any], ...]:
        if self.tok.kind != "(":
            return ()
        return self.many(")", "the argument list", "an argument name", ("name",), partial(self.pair, const))

    def pair(self, const: bool) -> tuple[str, Any]:
        name = self.advance().value
        self.expect(":", f"':' and a value after '{name}'")
        return name, self.value(const)

    def directives(self, const: bool) -> tuple[Directive, ...]:
        found: list[Directive] = []
        while self.tok.kind == "@":
            start = self.advance().start
            name = self.name("a directive name after '@'")
            found.append(Directive(name, self.arguments(const), *self.loc(start)))
        return tuple(found)

    def value(self, const: bool) -> Any:
        tok = self.tok
        if tok.kind == "[":
            return self.many("]", "the list", "a value", _VALUE_START, partial(self.value, const), True)
        if tok.kind == "{":
            fields = self.many("}", "the object", "a field name", ("name",), partial(self.pair, const), True)
            return dict(fields)
        if tok.kind == "$":
            if const:
                raise self.error("variables are not allowed in a default value", tok.start)
            self.advance()
            return VariableRef(self.name("a variable name after '$'"), *self.loc(tok.start))
        if tok.kind not in _VALUE_START:
            raise self.unexpected("a value")
        self.advance()
        if tok.kind in ("int", "float"):
            return int(tok.value) if tok.kind == "int" else float(tok.value)
        if tok.kind == "name":
            return {"true": True, "false": False, "null": None}.get(tok.value, EnumValue(tok.value))
        return tok.value


def parse(text: str) -> Document:
    """Parse an executable GraphQL document; raises GraphQLSyntaxError at the first syntax error."""
    parser = _Parser(text)
    try:
        return parser.document()
    except RecursionError:
        pass
    raise parser.error("the query is nested too deeply", parser.tok.start)


def _spreads(selections: tuple[Selection, ...]) -> Iterator[FragmentSpread]:
    for sel in selections:
        if isinstance(sel, FragmentSpread):
            yield sel
        else:
            yield from _spreads(sel.selections)


def variable_uses(doc: Document, operation: Operation) -> tuple[VariableRef, ...]:
    """Every `$var` used by the operation, in document order, following each fragment spread once."""
    found: list[VariableRef] = []
    seen: set[str] = set()

    def values(items: Any) -> None:
        for item in items.values() if isinstance(items, dict) else items:
            if isinstance(item, VariableRef):
                found.append(item)
            elif isinstance(item, tuple | dict):
                values(item)

    def directives(items: tuple[Directive, ...]) -> None:
        for directive in items:
            values([value for _, value in directive.arguments])

    def walk(selections: tuple[Selection, ...]) -> None:
        for sel in selections:
            values([value for _, value in sel.arguments] if isinstance(sel, Field) else ())
            directives(sel.directives)
            if not isinstance(sel, FragmentSpread):
                walk(sel.selections)
            elif (fragment := doc.fragment(sel.name)) is not None and sel.name not in seen:
                seen.add(sel.name)
                directives(fragment.directives)
                walk(fragment.selections)

    directives(operation.directives)
    walk(operation.selections)
    return tuple(found)


_Entry = tuple[Field, frozenset[str], frozenset[str]]  # a field, its type conditions, fragments on its path


def _collect(
    doc: Document,
    selections: tuple[Selection, ...],
    conditions: frozenset[str],
    path: frozenset[str],
    groups: dict[str, list[_Entry]],
) -> None:
    for sel in selections:
        if isinstance(sel, Field):
            groups.setdefault(sel.response_key, []).append((sel, conditions, path))
        elif isinstance(sel, InlineFragment):
            extra = {sel.type_condition} if sel.type_condition else set()
            _collect(doc, sel.selections, conditions | extra, path, groups)
        elif (fragment := doc.fragment(sel.name)) is not None and sel.name not in path:
            extra = {fragment.type_condition}
            _collect(doc, fragment.selections, conditions | extra, path | {sel.name}, groups)


def _merge(doc: Document, parts: list[tuple[tuple[Selection, ...], frozenset[str]]]) -> dict[str, Node]:
    groups: dict[str, list[_Entry]] = {}
    for selections, path in parts:
        _collect(doc, selections, frozenset(), path, groups)
    tree: dict[str, Node] = {}
    for key, entries in groups.items():
        children = None
        if any(f.selections for f, _, _ in entries):
            children = _merge(doc, [(f.selections, path) for f, _, path in entries])
        unconditional = any(not conditions for _, conditions, _ in entries)
        conditions = frozenset[str]().union(*(c for _, c, _ in entries)) if not unconditional else frozenset()
        tree[key] = Node(entries[0][0].name, children, conditions)
    return tree


def selection_tree(doc: Document, operation: Operation) -> dict[str, Node]:
    """The merged response shape, with inline fragments and fragment spreads folded into their parent.

    A node's type_conditions are the fragment types it was selected under (empty if it is also selected
    unconditionally); fragment cycles are cut.
    """
    return _merge(doc, [(operation.selections, frozenset())])


def check(doc: Document) -> list[GraphQLSyntaxError]:
    """Checks that need no schema (names, fragments, variables), sorted by location."""
    errors: list[GraphQLSyntaxError] = []

    def report(message: str, at: Any, length: int = 1) -> None:
        if not any((e.message, e.line, e.column) == (message, at.line, at.column) for e in errors):
            errors.append(GraphQLSyntaxError(message, at.line, at.column, length))

    named: set[str | None] = set()
    for op in doc.operations:
        if op.name is None and len(doc.operations) > 1:
            report("an operation without a name must be the only operation in the query; give it a name", op)
        elif op.name in named:
            report(
                f"there is more than one operation named '{op.name}'; operation names must be unique", op, len(op.kind)
            )
        named.add(op.name)
    fragments: dict[str, FragmentDefinition] = {}
    for frag in doc.fragments:
        if frag.name in fragments:
            report(f"there is more than one fragment named '{frag.name}'; fragment names must be unique", frag, 8)
        fragments.setdefault(frag.name, frag)
    for selections in [op.selections for op in doc.operations] + [f.selections for f in doc.fragments]:
        for spread in _spreads(selections):
            if spread.name not in fragments:
                report(f"unknown fragment '{spread.name}'; no fragment with that name is defined", spread, 3)

    visited: set[str] = set()

    def cycles(frag: FragmentDefinition, path: list[FragmentSpread], on_path: dict[str, int]) -> None:
        visited.add(frag.name)
        on_path[frag.name] = len(path)
        for spread in _spreads(frag.selections):
            path.append(spread)
            if spread.name in on_path:
                loop = " → ".join([spread.name] + [s.name for s in path[on_path[spread.name] :]])
                report(
                    f"fragments form a cycle ({loop}); a fragment cannot include itself", path[on_path[spread.name]], 3
                )
            elif spread.name in fragments and spread.name not in visited:
                cycles(fragments[spread.name], path, on_path)
            path.pop()
        del on_path[frag.name]

    for frag in fragments.values():
        if frag.name not in visited:
            cycles(frag, [], {})
    used: set[str] = set()
    pending = [s.name for op in doc.operations for s in _spreads(op.selections)]
    while pending:
        if (name := pending.pop()) not in used and name in fragments:
            used.add(name)
            pending.extend(s.name for s in _spreads(fragments[name].selections))
    for frag in doc.fragments:
        if frag.name not in used:
            report(f"fragment '{frag.name}' is defined but never used", frag, 8)

    for op in doc.operations:
        declared: dict[str, str] = {}
        for var in op.variables:
            if var.name in declared:
                report(f"variable ${var.name} is declared more than once", var, len(var.name) + 1)
            declared.setdefault(var.name, var.type)
        uses = variable_uses(doc, op)
        head = f"{op.kind} {op.name}" if op.name else f"{op.kind} "
        for use in uses:
            if use.name not in declared:
                declared[use.name] = "ID!"
                wanted = ", ".join(f"${name}: {type_}" for name, type_ in declared.items())
                report(
                    f"variable ${use.name} is used but not declared; declare it as `{head}({wanted})`",
                    use,
                    len(use.name) + 1,
                )
        for var in op.variables:
            if all(use.name != var.name for use in uses):
                report(f"variable ${var.name} is declared but never used", var, len(var.name) + 1)
    return sorted(errors, key=lambda e: (e.line, e.column))
