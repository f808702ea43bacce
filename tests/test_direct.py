"""The direct path (mapper/direct.py) against Jinja itself: same values, same types, same errors.

Every template below is rendered twice on data hypothesis makes (numbers, text, null, booleans, nested
objects, missing keys): through `compile_template` (the direct path, with Jinja as its fallback) and through
Jinja's own renderer alone. The two must agree on the value and its type, or fail with the same message.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.language.expressions import (
    PATH,
    TEXT,
    EvaluationError,
    _checked_binop,
    _native_renderer,
    _text_renderer,
    compile_template,
    direct,
)

TEXT_TEMPLATES = [
    "WorkLink call ended after {{ (seconds / 60) | round(1) }} min",
    "{{ a + b }} / {{ a - b }} / {{ a * b }} / {{ a // b }} / {{ a % b }} / {{ a ** 2 }}",
    "{{ -a }} {{ +b }} {{ not flag }} {{ a if flag else b }} {{ a and b }} {{ a or b }}",
    "{{ a < b }} {{ a == b }} {{ a != b }} {{ a <= b <= 10 }} {{ a >= b }} {{ a > b }}",
    "{{ name | upper }}-{{ name | lower }}-{{ name | trim }}-{{ name ~ '!' }}-{{ name[:3] }}-{{ name[1:] }}",
    "{{ name[::2] }} {{ name[1:-1:2] }} {{ name[a:b] }} {{ name[::a] }}",
    "{{ node.started[:19] }} UTC, {{ node.duration | minutes }} min, {{ node.started | iso8601 }}",
    "{{ node.missing | default('none') }} {{ (node.duration / 0) | round(1) }}",
    "{{ a | round }} {{ b | int }} {{ a | float }} {{ name | length }} {{ a | abs }} {{ name | string }}",
    "{{ node['duration'] * 2 }} {{ node.items }} {{ 'x' * a }}",
]
NATIVE_TEMPLATES = [
    "{{ (seconds / 60) | round(1) }}",
    "{{ a if flag else name }}",
    "{{ a > b and flag }}",
    "{{ node.duration + a }}",
    "{{ name ~ a }}",
    "{{ name[:2] }}",
    "{{ node.started | iso8601 }}",
]
PATH_TEMPLATES = ["/incident/{{ name }}/{{ a + b }}", "/x/{{ name | odata_quote }}/{{ (a / b) | round(2) }}"]

_leaf = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["2024-05-01T10:12:31Z", "Q2FsbA==", " padded ", "ended"]),
)
_scope = st.fixed_dictionaries(
    {},
    optional={
        "a": _leaf,
        "b": _leaf,
        "seconds": _leaf,
        "name": _leaf,
        "flag": _leaf,
        "node": st.fixed_dictionaries(
            {}, optional={"duration": _leaf, "started": _leaf, "items": _leaf, "missing": _leaf}
        ),
    },
)


def _outcome(render: Any, scope: dict[str, Any]) -> tuple[str, Any]:
    try:
        value = render(scope)
    except EvaluationError as exc:
        message = str(exc)
        # The direct path names the value when a plain name is null; Jinja cannot say which one it was.
        return ("error", "null" if "is empty (null)" in message else message)
    return ("value", (type(value).__name__, value))


def _jinja_text(source: str, environment: Any = TEXT) -> Any:
    return _text_renderer(environment, environment.parse(source))


@settings(max_examples=300, deadline=None)
@given(scope=_scope)
def test_text_templates_render_as_jinja_renders_them(scope: dict[str, Any]) -> None:
    for source in TEXT_TEMPLATES:
        assert _outcome(compile_template(source).render, scope) == _outcome(_jinja_text(source), scope), source
    for source in PATH_TEMPLATES:
        ours = compile_template(source, PATH).render
        assert _outcome(ours, scope) == _outcome(_jinja_text(source, PATH), scope), source


@settings(max_examples=300, deadline=None)
@given(scope=_scope)
def test_single_expressions_keep_the_value_and_type_jinja_gives(scope: dict[str, Any]) -> None:
    for source in NATIVE_TEMPLATES:
        jinja = _native_renderer(TEXT, source[2:-2])
        assert _outcome(compile_template(source).render, scope) == _outcome(jinja, scope), source


@pytest.mark.parametrize(
    "expression",
    [
        "(seconds / 60) | round(1)",
        "a + b * 2 - c // 3 % 4",
        "-a if flag and not other else +b",
        "a < b <= c != d",
        "name ~ '-' ~ node.id",
        "node.started[:19] | iso8601",
        "x['key'].y",
    ],
)
def test_the_common_expressions_take_the_direct_path(expression: str) -> None:
    node = TEXT.parse("{{ " + expression + " }}").body[0].nodes[0]  # type: ignore[attr-defined]
    assert direct.compile_node(node, TEXT.filters, _checked_binop) is not None


@pytest.mark.parametrize(
    "expression",
    ["items | join(',')", "name | replace('a', 'b')", "range(3)", "x.items", "a if b", "lookup(a)", "[a, b]"],
)
def test_what_needs_jinja_stays_with_jinja(expression: str) -> None:
    node = TEXT.parse("{{ " + expression + " }}").body[0].nodes[0]  # type: ignore[attr-defined]
    assert direct.compile_node(node, TEXT.filters, _checked_binop) is None


def test_a_template_bomb_is_refused_on_the_direct_path_too() -> None:
    template = compile_template("{{ 'x' * n }}")
    with pytest.raises(EvaluationError, match="repeating a value"):
        template.render({"n": 10**9})
    with pytest.raises(EvaluationError, match="exponent"):
        compile_template("{{ n ** 1000 }}").render({"n": 7})
