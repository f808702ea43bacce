"""What is wrong with a template, located in its text and said in plain words.

Jinja's syntax errors name only a line; `locate` finds the token. `check_names` does at compile time the
checks Jinja leaves until the template first renders (unknown filters and tests, tags that load templates).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from mapper.errors import did_you_mean
from mapper.language.expressions.errors import ExpressionSyntaxError
from mapper.language.expressions.sandbox import Sandbox

_PLAIN_TESTS = (
    "defined",
    "divisibleby",
    "eq",
    "even",
    "false",
    "ge",
    "gt",
    "in",
    "le",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sequence",
    "string",
    "true",
)
_TOKENS = {"end of print statement": "}}", "end of statement block": "%}", "end of template": "the end"}
_OPENING_TAGS = ("if", "for", "filter", "macro", "call", "with", "block", "autoescape", "raw")
_KNOWN_TAGS = ("if", "for", "set", "filter", "elif", "else")
_LOADING_TAGS = (nodes.Include, nodes.Extends, nodes.Import, nodes.FromImport, nodes.Block)

Explained = tuple[str, str | None, str | None]  # message, hint, the token to point at


# ------------------------------------------------------------------------------------ names and tags


def check_names(source: str, tree: nodes.Template, environment: Sandbox) -> None:
    """Filters and tests must exist, and templates cannot load other templates (there are none to load)."""
    for node in tree.find_all(_LOADING_TAGS):
        tag = type(node).__name__.lower().replace("fromimport", "from")
        found = re.search(r"\{%-?\s*" + tag + r"\b", source)
        raise ExpressionSyntaxError(
            f"template: `{{% {tag} %}}` cannot be used in a mapping",
            found.start() if found else 0,
            len(found.group(0)) if found else 2,
            hint="a mapping's templates stand alone; write the text out where it is needed",
        )
    for loop in tree.find_all(nodes.For):  # Jinja finds this only when it generates code, which waits for use
        for target in loop.target.find_all(nodes.Name):
            if target.name == "loop":
                found = re.search(r"\bloop\b", source)
                raise ExpressionSyntaxError(
                    "template: `loop` is Jinja's own name inside a `for`; use another name",
                    found.start() if found else 0,
                    4,
                )
    _check_known(source, tree, "filter", environment.filters, nodes.Filter)
    _check_known(source, tree, "test", environment.tests, nodes.Test)
    _check_attributes(source, tree)


def _check_attributes(source: str, tree: nodes.Template) -> None:
    """`x.__class__`: the sandbox refuses a `__` name on every object when the template runs (it reaches Python's
    internals, not the data); say so when the mapping is checked, in the words the run would use."""
    unsafe = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            name: object = node.attr
        else:
            key = getattr(node, "arg", None)
            name = key.value if isinstance(key, nodes.Const) else None
        if isinstance(name, str) and name.startswith("__"):
            unsafe.append((source.find(name), name))
    if unsafe:
        offset, name = min(unsafe)  # the first in the text (the tree lists the outermost first)
        raise ExpressionSyntaxError(
            f"not allowed: access to attribute `{name}` is unsafe",
            offset,
            len(name),
            hint="a template reads values from the data by their names; Python's internals cannot be reached",
        )


def _check_known(
    source: str, tree: nodes.Template, kind: str, table: Mapping[str, Any], found_in: type[nodes.Filter | nodes.Test]
) -> None:
    unknown = sorted({node.name for node in tree.find_all(found_in) if node.name not in table})
    if not unknown:
        return
    name = unknown[0]
    before = r"\|\s*" if kind == "filter" else r"\bis\s+(?:not\s+)?"
    spot = re.search(before + r"(" + re.escape(name) + r")\b", source) or re.search(re.escape(name), source)
    offset = spot.start(spot.lastindex or 0) if spot else 0
    listed = "see the filters in docs/mapping.md" if kind == "filter" else f"tests: {', '.join(_PLAIN_TESTS)}"
    hint = did_you_mean(name, table) or listed
    raise ExpressionSyntaxError(f"unknown {kind} `{name}`", offset, len(name), hint=hint)


# ------------------------------------------------------------------------------------ syntax errors


def _token(name: str) -> str:
    return _TOKENS.get(name, name)


def _plain_tags(message: str) -> Explained | None:
    """Jinja's messages about tags: never closed, closing the wrong block, unknown."""
    if match := re.match(r"Unexpected end of template\. .*innermost block that needs to be closed is '(\w+)'", message):
        tag = match.group(1)
        return f"template: `{{% {tag} %}}` is never closed", f"add `{{% end{tag} %}}` where it should end", None
    if match := re.match(
        r"Encountered unknown tag '(\w+)'\. .*innermost block that needs to be closed is '(\w+)'", message
    ):
        tag, open_tag = match.groups()
        return (
            f"template: `{{% {tag} %}}` does not close the open `{{% {open_tag} %}}`",
            f"close it with `{{% end{open_tag} %}}` first",
            tag,
        )
    if match := re.match(r"Encountered unknown tag '(\w+)'", message):
        tag = match.group(1)
        if tag.startswith("end") or tag in ("else", "elif"):
            return f"template: `{{% {tag} %}}` has no opening tag", "remove it, or add the tag it belongs to", tag
        hint = did_you_mean(tag, _KNOWN_TAGS) or f"tags: {', '.join(_KNOWN_TAGS)}"
        return f"template: unknown tag `{{% {tag} %}}`", hint, tag
    return None


def _plain_characters(message: str) -> Explained | None:
    """Jinja's messages about the text itself: an unclosed `{{`, quote or comment."""
    if message.startswith("unexpected end of template"):
        return "template: `{{` is never closed", "add `}}`", None
    if match := re.match(r"""unexpected char ['"](.)['"] at (\d+)""", message):
        quote = match.group(1)
        if quote in "'\"":
            return f"template: a text in quotes is never closed (`{quote}`)", f"add the closing `{quote}`", None
        return f"template: unexpected character `{quote}`", None, quote
    if message == "Missing end of comment tag":
        return "template: a `{#` comment is never closed", "add `#}`", None
    return None


def _plain_tokens(message: str) -> Explained | None:
    """Jinja's messages about a token where another was expected."""
    if match := re.match(r"expected token '([^']+)', got '([^']+)'", message):
        wanted, got = _token(match.group(1)), _token(match.group(2))
        wanted = "a name" if wanted == "name" else f"`{wanted}`"
        advice = "a filter name must follow `|`" if wanted == "a name" else None
        if wanted == "`}}`" and got not in ("}}", "%}"):
            advice = "join names with `~` or an operator; to write text, put it outside `{{ }}`"
        return f"template: expected {wanted}, found `{got}`", advice, match.group(2)
    if match := re.match(r"Expected an expression, got '([^']+)'", message):
        got = _token(match.group(1))
        return f"template: a value is missing before `{got}`", None, match.group(1)
    if match := re.match(r"unexpected '([^']+)'(?:, expected '([^']+)')?", message):
        got = _token(match.group(1))
        if match.group(2):
            return f"template: unexpected `{got}`, expected `{_token(match.group(2))}`", None, match.group(1)
        if got in ("}}", "%}"):
            return f"template: a value is missing before `{got}`", None, match.group(1)
        closing = {"}": "close `{{` with `}}`", "%": "close `{%` with `%}`"}
        return f"template: unexpected `{got}`", closing.get(got), match.group(1)
    return None


def _plain_jinja(message: str) -> Explained:
    """(message, hint, the token to point at) for a Jinja syntax error message."""
    message = message.strip()
    for explain in (_plain_tags, _plain_characters, _plain_tokens):
        explained = explain(message)
        if explained is not None:
            return explained
    return f"template: {message[0].lower()}{message[1:]}" if message else "template: cannot be read", None, None


def locate(source: str, exc: TemplateSyntaxError, environment: Sandbox) -> ExpressionSyntaxError:
    """Jinja reports only a line: find the tag on it that fails alone, and the token inside it."""
    raw = exc.message or str(exc)
    message, hint, token = _plain_jinja(raw)
    offset, width = _where_it_opened(source, raw) or _shortest_failing_start(source, exc, raw, token, environment)
    return ExpressionSyntaxError(message, offset, width, hint)


def _where_it_opened(source: str, raw: str) -> tuple[int, int] | None:
    """For what is never closed (a tag, `{{`, a comment), the place it opened; for a bad character, that."""
    if match := re.match(r"unexpected char .* at (\d+)", raw):
        return int(match.group(1)), 1
    block = re.search(r"innermost block that needs to be closed is '(\w+)'", raw)
    if block and raw.startswith("Unexpected end of template"):
        opened = list(re.finditer(r"\{%-?\s*" + block.group(1) + r"\b", source))
        return (opened[-1].start(), len(opened[-1].group(0))) if opened else (0, 2)
    if raw.startswith("unexpected end of template"):
        braces = list(re.finditer(r"\{\{", source))
        return (braces[-1].start() if braces else 0), 2
    if raw == "Missing end of comment tag":
        return max(source.rfind("{#"), 0), 2
    return None


def _shortest_failing_start(
    source: str, exc: TemplateSyntaxError, raw: str, token: str | None, environment: Sandbox
) -> tuple[int, int]:
    """The shortest start of the template that fails the same way ends just after the offending token."""
    lines = source.split("\n")
    line = min(max(exc.lineno, 1), len(lines))
    line_start = sum(len(x) + 1 for x in lines[: line - 1])
    text = lines[line - 1]
    for end in range(line_start + 1, min(line_start + len(text), line_start + 2000) + 1):
        try:
            environment.parse(source[:end])
        except TemplateSyntaxError as shorter:
            if (shorter.message or str(shorter)) != raw or shorter.lineno != exc.lineno:
                continue
            shown = _token(token) if token else ""
            if shown and source[:end].endswith(shown):
                return end - len(shown), len(shown)
            return end - 1, 1
    return _failing_block(text, token, environment, line_start)


def _failing_block(text: str, token: str | None, environment: Sandbox, line_start: int) -> tuple[int, int]:
    """The first `{{ }}` or `{% %}` on the line that fails alone, and the token inside it."""
    for block in re.finditer(r"\{\{.*?(?:\}\}|$)|\{%.*?(?:%\}|$)", text):
        if not _fails_alone(block.group(0), environment):
            continue
        inside = _find_token(block.group(0), token)
        if inside is None:
            return line_start + block.start(), 2
        offset, width = inside
        return line_start + block.start() + offset, width
    first = re.search(r"\{[{%]", text)
    return line_start + (first.start() if first else 0), 2


def _fails_alone(block: str, environment: Sandbox) -> bool:
    """Whether one `{{ }}` or `{% %}` fails to parse on its own (an opening tag gets its closing tag)."""
    tag = re.match(r"\{%-?\s*(\w+)", block)
    if tag:
        name = tag.group(1)
        if name.startswith("end") or name in ("else", "elif"):
            return block.endswith("%}") is False
        if name in _OPENING_TAGS or (name == "set" and "=" not in block):
            block += f"{{% end{name} %}}"
    try:
        environment.parse(block)
    except TemplateSyntaxError:
        return True
    return False


def _find_token(block: str, token: str | None) -> tuple[int, int] | None:
    """(offset, width) of `token` inside a block; its closing delimiter for 'end of ...' tokens."""
    if token is None:
        return None
    if token in ("end of print statement", "end of statement block"):
        closing = "}}" if token == "end of print statement" else "%}"
        end = block.rfind(closing)
        return (end, 2) if end >= 2 else (len(block), 1)
    position = block.find(token, 2)
    if position < 0:
        return None
    return position, len(token)
