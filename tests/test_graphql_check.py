"""mapper.language.graphql: a mapping's query checked by graphql-core, every problem in plain words at its place."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.language.graphql import reading, rules
from mapper.language.graphql.check import check
from mapper.language.graphql.selection import Node, selection_tree

_NEWLINE = re.compile(r"\r\n|[\n\r]")
SCOPE_QUERY = (
    "query ($id: ID!) { node(id: $id) { ... on CallSession { id startedAt endedAt duration state externalData } } }"
)


def _place(text: str, offset: int) -> tuple[int, int]:
    starts = [0] + [match.end() for match in _NEWLINE.finditer(text)]
    line = max(i for i, start in enumerate(starts) if start <= offset)
    return line + 1, offset - starts[line] + 1


def _problems(text: str, given: tuple[str, ...] = ()) -> list[tuple[str, int, int]]:
    return [(p.message, *_place(text, p.offset)) for p in check(text, None, given).problems]


# -- syntax errors: graphql-core finds them, the message says what was open ---------------------------

SYNTAX = [
    ("{a", "expected '}' to close the selection that starts at line 1, found end of query", 1, 3),
    (
        "query {\n  node {\n    id\n",
        "expected '}' to close the selection that starts at line 2, found end of query",
        4,
        1,
    ),
    ("{}", "expected a field name (the selection cannot be empty), found '}'", 1, 2),
    ("{a %}", "unexpected character '%'", 1, 4),
    ('{a(b: "abc', "unterminated string: add the closing quote", 1, 11),
    ("{a(b: 'x')}", "unexpected single quote ('); strings must use double quotes (\")", 1, 7),
    ("{a(b: 1.)}", "a number needs a digit here, found ')'", 1, 9),
    ("{a(b: 01)}", "unexpected digit '1' after a leading 0; numbers cannot start with 0", 1, 8),
    ("{a(b: .5)}", "a number cannot start with '.'; did you mean '0.5'?", 1, 7),
    ("{a..b}", "found '..'; did you mean '...'?", 1, 3),
    ('{a(b: "\\x")}', "invalid character escape sequence: '\\x'", 1, 8),
    ("{a(b: \u00a0)}", "unexpected character U+00A0", 1, 7),
    ("", "the query is empty; expected 'query', 'mutation', 'subscription', 'fragment' or '{'", 1, 1),
    ("{a}\n}", "expected 'query', 'mutation', 'subscription', 'fragment' or '{', found '}'", 2, 1),
    ("query Q 5", "expected '{', found the number 5", 1, 9),
    ("query ($a: Int = $b) {a}", "variables are not allowed in a default value", 1, 18),
    ("query ($a) {a}", "expected ':' and a type after '$a', found ')'", 1, 10),
    ("query () {a}", "expected a variable such as $id (the variable list cannot be empty), found ')'", 1, 8),
    ("query ($a: [Int) {a}", "expected ']' to close the list type that starts at line 1, found ')'", 1, 16),
    ("fragment on on T {a}", "a fragment cannot be named 'on'", 1, 10),
    ("fragment F T {a}", "expected 'on' after the fragment name 'F', found 'T'", 1, 12),
    ("{a(b: [1, 2}", "expected a value or ']' to close the list that starts at line 1, found '}'", 1, 12),
    ("{a(b: {c 1})}", "expected ':' and a value after 'c', found the number 1", 1, 10),
    ("{a(b:)}", "expected a value, found ')'", 1, 6),
    ("{a()}", "expected an argument name (the argument list cannot be empty), found ')'", 1, 4),
    ("{a(b: 1 {", "expected an argument name or ')' to close the argument list that starts at line 1, found '{'", 1, 9),
    ("{a @}", "expected a directive name after '@', found '}'", 1, 5),
    ('{a: "x"}', "expected a field name after 'a:', found a string", 1, 5),
    (
        "{a(b: 1) 2}",
        "expected a field name or '}' to close the selection that starts at line 1, found the number 2",
        1,
        10,
    ),
    ("{a" * 201 + "}" * 201, "the query is nested too deeply", 1, 401),
    ("type Foo { a: Int }", "`Foo` is a schema definition; a query holds only operations and fragments", 1, 1),
]


@pytest.mark.parametrize(("text", "message", "line", "column"), SYNTAX)
def test_syntax_errors(text: str, message: str, line: int, column: int) -> None:
    assert _problems(text)[0] == (f"GraphQL: {message}", line, column)


def test_a_syntax_error_underlines_the_token() -> None:
    (problem,) = check('query Q "desc" {a}', None, ()).problems
    assert problem.width == 6


# -- checks that need no schema -----------------------------------------------------------------------


def test_clean_documents() -> None:
    assert _problems(SCOPE_QUERY, ("id",)) == []
    assert rules.check(reading.parse("query A($x: Int) { ...F } query B { b } fragment F on T { a(x: $x) }")) == []


def test_operation_names() -> None:
    assert _problems("query A { a }\nquery A { b }")[0] == (
        "GraphQL: there is more than one operation named 'A'; operation names must be unique",
        2,
        1,
    )
    message = "GraphQL: an operation without a name must be the only operation in the query; give it a name"
    assert _problems("{ a }\nquery B { b }")[0] == (message, 1, 1)
    assert _problems("{ a }\n{ b }")[:2] == [(message, 1, 1), (message, 2, 1)]


def test_fragments() -> None:
    def schema_free(text: str) -> list[tuple[str, int, int]]:
        return [(p.message[len("GraphQL: ") :], *_place(text, p.offset)) for p in rules.check(reading.parse(text))]

    assert schema_free("{ ...Nope }") == [("unknown fragment 'Nope'; no fragment with that name is defined", 1, 3)]
    assert schema_free("{ a }\nfragment F on T { a }") == [("fragment 'F' is defined but never used", 2, 1)]
    assert schema_free("{ ...A }\nfragment A on T { ...B }\nfragment B on T { ...A }") == [
        ("fragments form a cycle (A → B → A); a fragment cannot include itself", 2, 19)
    ]
    assert schema_free("{ ...A }\nfragment A on T { x ...A }") == [
        ("fragments form a cycle (A → A); a fragment cannot include itself", 2, 21)
    ]
    assert schema_free("{ ...A }\nfragment A on T { a }\nfragment A on T { b }") == [
        ("there is more than one fragment named 'A'; fragment names must be unique", 3, 1)
    ]


def test_variables() -> None:
    assert _problems("{ node(id: $foo) { id } }") == [
        ("GraphQL: variable $foo is used but not declared; declare it as `query ($foo: ID!)`", 1, 12)
    ]
    assert _problems("query Q($id: ID!) { node(id: $id, x: $x) { id } }", ("id",)) == [
        ("GraphQL: variable $x is used but not declared; declare it as `query Q($id: ID!, $x: ID!)`", 1, 38)
    ]
    assert _problems("query ($id: ID!, $unused: Int) { node(id: $id) { id } }", ("id",)) == [
        ("GraphQL: variable $unused is declared but never used", 1, 18)
    ]
    assert _problems("query ($id: ID!, $id: ID) { node(id: $id) { id } }", ("id",)) == [
        ("GraphQL: variable $id is declared more than once", 1, 18)
    ]
    assert _problems("query ($a: Int) { ...F }\nfragment F on T { x(a: $a, b: $b, c: $b) }") == [
        ("GraphQL: variable $b is used but not declared; declare it as `query ($a: Int, $b: ID!)`", 2, 31)
    ]


def test_variables_given_and_needed() -> None:
    text = "query ($id: ID!, $first: Int!, $after: String) { node(id: $id) { a(first: $first, after: $after) } }"
    problems = check(text, None, ("id", "extra")).problems
    assert [(p.message, p.variable) for p in problems] == [
        ("GraphQL: the query needs `$first` but `variables:` does not give it", None),
        ("GraphQL: `extra` is given under `variables:` but the query declares no `$extra`", "extra"),
    ]
    assert _place(text, problems[0].offset) == (1, 18)


def test_the_operation_to_run() -> None:
    assert _problems("query A { a } query B { b }")[0][:1] == ("GraphQL: the query text holds several operations",)
    assert check("query A { a } query B { b }", "B", ()).problems == []
    assert check("query A { a }", "C", ()).problems[0].message == "GraphQL: there is no operation `C` (operations: A)"
    assert _problems("mutation M { a }") == [("GraphQL: a mapping's query must read data, not run a mutation", 1, 1)]
    assert _problems("fragment F on T { a }")[-1][0] == "GraphQL: the query text has no operation"


def test_used_variables_follow_fragments() -> None:
    document = reading.parse(
        "query Q($a: ID, $b: Int) @op(x: $o) { x(id: $a) ...F ...F ... on T @include(if: $i) { y } }\n"
        "fragment F on T @fd(z: $z) { y(n: {m: [$b]}) @skip(if: $c) ...G }\n"
        "fragment G on T { ...F w(q: $q) }"
    )
    operation = document.definitions[0]
    assert rules.used_variables(document, operation) == {"o", "a", "z", "b", "c", "q", "i"}  # type: ignore[arg-type]


# -- the selection: what `result.` may read -----------------------------------------------------------


def _tree(text: str) -> dict[str, Node]:
    document = reading.parse(text)
    return selection_tree(document, document.definitions[0])  # type: ignore[arg-type]


def test_selection_tree_scope_query() -> None:
    conditions = frozenset({"CallSession"})
    leaves = ["id", "startedAt", "endedAt", "duration", "state", "externalData"]
    assert _tree(SCOPE_QUERY) == {
        "node": Node("node", {name: Node(name, None, conditions) for name in leaves}, frozenset())
    }
    assert check(SCOPE_QUERY, None, ("id",)).selection == _tree(SCOPE_QUERY)


def test_selection_tree_merges_fragments_and_aliases() -> None:
    tree = _tree(
        "{ node { id ... on A { id name } ...F } other: node { id } } fragment F on B { name extra { x } ... { y } }"
    )
    node = tree["node"]
    assert node.children is not None
    assert node.children["id"] == Node("id", None, frozenset())  # also selected unconditionally
    assert node.children["name"] == Node("name", None, frozenset({"A", "B"}))
    assert node.children["extra"] == Node("extra", {"x": Node("x", None, frozenset())}, frozenset({"B"}))
    assert node.children["y"].type_conditions == frozenset({"B"})
    assert tree["other"] == Node("node", {"id": Node("id", None, frozenset())}, frozenset())


def test_selection_tree_merges_repeated_fields() -> None:
    tree = _tree("{ a { b } a { c { d } } a { c { e } } }")
    assert tree["a"].children is not None
    assert set(tree["a"].children) == {"b", "c"}
    assert set(tree["a"].children["c"].children or {}) == {"d", "e"}


def test_selection_tree_survives_cycles_and_unknown_fragments() -> None:
    assert _tree("{ ...F ...Missing } fragment F on T { a ...F }") == {"a": Node("a", None, frozenset({"T"}))}
    tree = _tree("{ ...F } fragment F on T { a { ...F } }")
    assert tree == {"a": Node("a", {}, frozenset({"T"}))}


# -- any text: problems, never a crash; graphql-core only when a query is checked -------------------------

_PIECES = [
    "{", "}", "(", ")", "[", "]", ":", "$", "@", "...", "..", ".", "!", "=", "&", "|", ",", " ", "\n", "\r\n",
    "# c\n", "query", "mutation", "fragment", "on", "a", "T", "true", "type", "0", "1.5", "1e", "-", '"s"', '"',
    '"""b"""', '"""', "é", "%", "'",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(_PIECES), max_size=25).map("".join)))
def test_any_text_gives_located_problems_only(text: str) -> None:
    checked = check(text, None, ("id",))
    for problem in checked.problems:
        assert problem.message.startswith("GraphQL: ") and problem.width >= 1
        assert 0 <= problem.offset <= len(text)


def test_a_mapping_without_a_query_does_not_import_graphql_core() -> None:
    code = (
        "import sys\n"
        "from mapper.language import loader\n"
        "plan, problems = loader.load_text('version: 1\\nname: x\\ntrigger: {events: [updated]}\\n"
        'connections: {t: {base_url: "https://t.example"}}\\n'
        "steps: [{name: s, connection: t, method: POST, path: /x}]\\n', 'm.yaml')\n"
        "assert plan is not None, problems\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'graphql'], 'graphql imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
