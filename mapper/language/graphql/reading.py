"""Query text → graphql-core's document; its syntax errors in plain words, at the token, with what was open.

graphql-core says what it expected (`Expected Name, found '{'.`); which list or selection was left open
(`expected an argument name or ')' to close the argument list that starts at line 2`) is read from the
tokens before the error, with graphql-core's own lexer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from graphql import GraphQLSyntaxError, Source
from graphql import parse as parse_document
from graphql.language import DocumentNode, Lexer, Token, TokenKind

from mapper.language.graphql.problems import QuerySyntaxError

_DEFINITION = "'query', 'mutation', 'subscription', 'fragment' or '{'"
_CLOSING = {"{": "}", "(": ")", "[": "]"}
_VALUES = ("argument list", "list", "object")  # where `{` opens an object value, not a selection


def parse(text: str) -> DocumentNode:
    """The document, or QuerySyntaxError at the first syntax error."""
    try:
        return parse_document(Source(text))
    except GraphQLSyntaxError as exc:
        offset = next(iter(exc.positions or ()), 0)
        raise _explain(text, exc.message.removeprefix("Syntax Error: ").rstrip("."), offset) from None
    except RecursionError:  # graphql-core before 3.3 has no nesting limit of its own
        raise QuerySyntaxError("the query is nested too deeply", 0) from None


@dataclass(frozen=True)
class _Open:
    """A `{`, `(` or `[` not closed before the error, and what it opened."""

    char: str
    line: int
    what: str  # selection, object, argument list, variable list, list, list type


@dataclass
class _Context:
    """What the tokens before the error say: the brackets left open and the last two tokens."""

    open: list[_Open]
    last: Token | None
    before_last: Token | None
    found: Token | None  # the token at the error

    def innermost(self) -> _Open | None:
        return self.open[-1] if self.open else None

    def after(self, kind: TokenKind, value: str | None = None) -> bool:
        return self.last is not None and self.last.kind == kind and (value is None or self.last.value == value)


def _context(text: str, offset: int) -> _Context:
    lexer = Lexer(Source(text))
    context = _Context([], None, None, None)
    try:
        token = lexer.advance()
        while token.kind != TokenKind.EOF and token.start < offset:
            _track(context, token)
            context.before_last, context.last = context.last, token
            token = lexer.advance()
        context.found = token
    except GraphQLSyntaxError:
        pass  # a lexer error at the error itself
    return context


def _track(context: _Context, token: Token) -> None:
    char = token.kind.value
    if char in _CLOSING:
        context.open.append(_Open(char, token.line, _opens(context, char)))
    elif char in _CLOSING.values() and context.open:
        context.open.pop()


def _opens(context: _Context, char: str) -> str:
    inner = context.innermost()
    if char == "{":
        return "object" if inner is not None and inner.what != "selection" else "selection"
    if char == "(":
        directive = context.before_last is not None and context.before_last.kind == TokenKind.AT
        return "variable list" if inner is None and not directive else "argument list"
    in_type = inner is not None and (
        inner.what == "list type" or (inner.what == "variable list" and context.after(TokenKind.COLON))
    )
    return "list type" if in_type else "list"


def _found(token: Token | None) -> str:
    if token is None or token.kind == TokenKind.EOF:
        return "end of query"
    if token.kind in (TokenKind.INT, TokenKind.FLOAT):
        return f"the number {token.value}"
    if token.kind in (TokenKind.STRING, TokenKind.BLOCK_STRING):
        return "a string"
    return f"'{token.value if token.kind == TokenKind.NAME else token.kind.value}'"


def _closing(opened: _Open, context: _Context, item: str) -> str:
    """`a field name or '}' to close the selection that starts at line 2` (or: cannot be empty)."""
    close = _CLOSING[opened.char]
    if context.last is not None and context.last.kind.value == opened.char:
        return f"{item} (the {opened.what} cannot be empty)"
    either = "" if context.found is None or context.found.kind == TokenKind.EOF else f"{item} or "
    return f"{either}'{close}' to close the {opened.what} that starts at line {opened.line}"


_ITEMS = {
    "selection": "a field name",
    "object": "a field name",
    "argument list": "an argument name",
    "variable list": "a variable such as $id",
    "list": "a value",
    "list type": "a type name such as ID or String",
}


def _expected_name(context: _Context) -> str:
    last = context.last
    inner = context.innermost()
    if context.after(TokenKind.DOLLAR):
        return "a variable name after '$'"
    if context.after(TokenKind.AT):
        return "a directive name after '@'"
    if context.after(TokenKind.NAME, "on"):
        return "a type name after 'on'"
    if inner is None and context.after(TokenKind.NAME, "fragment"):
        return "a fragment name after 'fragment'"
    if context.after(TokenKind.COLON) and inner is not None and inner.what == "selection":
        name = context.before_last.value if context.before_last is not None else ""
        return f"a field name after '{name}:'"
    if context.after(TokenKind.COLON) or (last is not None and inner is not None and inner.what == "list type"):
        return "a type name such as ID or String"
    if inner is not None:
        return _closing(inner, context, _ITEMS[inner.what])
    return "a name"


def _expected(wanted: str, context: _Context) -> str:
    """What graphql-core expected (`Name`, `':'`, `'on'`...) in words that say where."""
    inner = context.innermost()
    last = context.last.value if context.last is not None and context.last.kind == TokenKind.NAME else None
    if wanted == "Name":
        return _expected_name(context)
    if wanted == "':'" and last is not None:
        in_variables = inner is not None and inner.what == "variable list"
        return f"':' and a type after '${last}'" if in_variables else f"':' and a value after '{last}'"
    if wanted == "'on'" and last is not None:
        return f"'on' after the fragment name '{last}'"
    if wanted == "'$'" and inner is not None:
        return _closing(inner, context, _ITEMS["variable list"])
    if inner is not None and wanted == f"'{_CLOSING[inner.char]}'":
        return f"{wanted} to close the {inner.what} that starts at line {inner.line}"
    return wanted


def _unexpected(context: _Context) -> str:
    """graphql-core's `Unexpected X`: no production starts with X here."""
    inner = context.innermost()
    if inner is None:
        if context.last is None and (context.found is None or context.found.kind == TokenKind.EOF):
            return f"the query is empty; expected {_DEFINITION}"
        if context.after(TokenKind.NAME, "fragment"):
            return "a fragment cannot be named 'on'"
        return f"expected {_DEFINITION}, found {_found(context.found)}"
    if inner.what == "list" and not context.after(TokenKind.BRACKET_L):
        return f"expected {_closing(inner, context, 'a value')}, found {_found(context.found)}"
    return f"expected a value, found {_found(context.found)}"


_LEXER_WORDS = (
    (r"Unterminated string", "unterminated string: add the closing quote"),
    (r"Unexpected single quote character.*", "unexpected single quote ('); strings must use double quotes (\")"),
    (
        r"Invalid number, unexpected digit after 0: '(.)'",
        r"unexpected digit '\1' after a leading 0; numbers cannot start with 0",
    ),
    (r"Invalid number, expected digit but got: (.*)", r"a number needs a digit here, found \1"),
    (
        r"Invalid number, expected digit before '\.', did you mean '(.*)'\?",
        r"a number cannot start with '.'; did you mean '\1'?",
    ),
    (r"Unexpected '\.\.', did you mean '\.\.\.'\?", "found '..'; did you mean '...'?"),
    (r"Unexpected character: (.*)", r"unexpected character \1"),
    (r"Unexpected variable '\$\w+' in constant value", "variables are not allowed in a default value"),
    (r"Document is nested too deeply.*", "the query is nested too deeply"),
)


def _explain(text: str, description: str, offset: int) -> QuerySyntaxError:
    for pattern, words in _LEXER_WORDS:
        if re.fullmatch(pattern, description):
            return QuerySyntaxError(re.sub(pattern, words, description), offset)
    context = _context(text, offset)
    found = context.found
    width = len(text[found.start : found.end].split("\n")[0]) if found is not None else 1
    if expected := re.fullmatch(r"Expected (.+), found .+", description):
        message = f"expected {_expected(expected.group(1), context)}, found {_found(found)}"
    elif description.startswith("Unexpected "):
        message = _unexpected(context)
    else:
        message = description[:1].lower() + description[1:]
    return QuerySyntaxError(message, offset, width)
