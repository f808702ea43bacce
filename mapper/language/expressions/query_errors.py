"""jmespath's syntax errors → ExpressionSyntaxError in plain words, at the column of the mistake, with a hint."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jmespath.exceptions

from mapper.language.expressions.errors import ExpressionSyntaxError
from mapper.language.expressions.references import not_first

_QUOTE_NAMES = {"'": "quote", '"': "double quote", "`": "backtick"}


def explain(source: str, exc: jmespath.exceptions.JMESPathError) -> ExpressionSyntaxError:
    """The located, plain-worded form of what `jmespath.compile(source)` raised."""
    if isinstance(exc, jmespath.exceptions.LexerError):
        value = str(exc.lexer_value or "")
        return ExpressionSyntaxError(
            f"JMESPath: {_plain(exc.message, value)}",
            exc.lexer_position,
            1 if value[:1] in ("'", '"', "`") else len(value),
            hint=_hint(source, "unknown", value),
        )
    if isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        return ExpressionSyntaxError(
            "JMESPath: the expression ends too early", len(source), 1, hint=_hint(source, "eof", "")
        )
    if isinstance(exc, jmespath.exceptions.EmptyExpressionError):
        return ExpressionSyntaxError("JMESPath: the expression is empty", 0)
    if isinstance(exc, jmespath.exceptions.ParseError):
        value = str(exc.token_value or "")
        return ExpressionSyntaxError(
            f"JMESPath: {_plain(exc.msg, value, exc.token_type)}",
            exc.lex_position,
            len(value) or 1,
            hint=_hint(source, exc.token_type, value, exc.lex_position),
        )
    return ExpressionSyntaxError(f"JMESPath: {exc}", 0)


def backtick_text(source: str) -> ExpressionSyntaxError:
    """`state == \\`done\\``: jmespath would read the text with a deprecation warning; say what to write."""
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


def _plain(message: str, value: str, token_type: str | None = None) -> str:
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


def _hint(source: str, token_type: str | None, value: str, offset: int = -1) -> str | None:
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


_NAME = r'(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*)'
_PATH_AFTER_NOT = re.compile(r"!\s*(" + _NAME + r"(?:\s*\.\s*(?:" + _NAME + r"|\*)|\s*\[[^\]]*\])*)")


def misplaced_not(source: str, ast: dict[str, Any]) -> Iterator[ExpressionSyntaxError]:
    """`!steps.x.y` is `(!steps).x.y`, always null: each such `!`, with the brackets that say what was meant."""
    left = len(list(_not_first_nodes(ast)))
    for match in _PATH_AFTER_NOT.finditer(source):
        path = match.group(1)
        root = re.match(_NAME, path)
        name = root.group(0) if root else path
        if path == name or left == 0:
            continue  # `!a` alone is fine
        left -= 1
        yield ExpressionSyntaxError(
            f"JMESPath: `!` applies only to `{name}`, so `!{path}` is always null",
            match.start(),
            len(match.group(0)),
            hint=f"write `!({path})`",
        )


def _not_first_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not_first(node) is not None:
        yield node
    for child in node.get("children", []):
        if isinstance(child, dict):
            yield from _not_first_nodes(child)
