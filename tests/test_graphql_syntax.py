"""Tests for mapper.language.graphql.syntax: the dependency-free GraphQL lexer, parser and schema-free checks."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import graphql
import pytest
from graphql.language import FragmentDefinitionNode, OperationDefinitionNode
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.language.graphql.syntax import (
    Document,
    EnumValue,
    Field,
    FragmentSpread,
    GraphQLSyntaxError,
    InlineFragment,
    Node,
    VariableRef,
    check,
    parse,
    selection_tree,
    variable_uses,
)

_NEWLINE = re.compile(r"\r\n|[\n\r]")
SCOPE_QUERY = (
    "query ($id: ID!) { node(id: $id) { ... on CallSession { id startedAt endedAt duration state externalData } } }"
)


def _error(text: str) -> GraphQLSyntaxError:
    with pytest.raises(GraphQLSyntaxError) as info:
        parse(text)
    return info.value


# -- positive cases ------------------------------------------------------------------------------------


def test_scope_ar_query() -> None:
    doc = parse(SCOPE_QUERY)
    assert doc.fragments == ()
    (op,) = doc.operations
    assert (op.kind, op.name, op.line, op.column) == ("query", None, 1, 1)
    (var,) = op.variables
    assert (var.name, var.type, var.required, var.has_default) == ("id", "ID!", True, False)
    assert (var.line, var.column) == (1, 8)
    (node,) = op.selections
    assert isinstance(node, Field)
    assert (node.name, node.alias, node.response_key, node.line, node.column) == ("node", None, "node", 1, 20)
    assert node.arguments == (("id", VariableRef("id", 1, 29)),)
    (inline,) = node.selections
    assert isinstance(inline, InlineFragment)
    assert inline.type_condition == "CallSession"
    assert [f.name for f in inline.selections if isinstance(f, Field)] == [
        "id",
        "startedAt",
        "endedAt",
        "duration",
        "state",
        "externalData",
    ]


def test_named_operations_kinds_and_shorthand() -> None:
    doc = parse("query A { a }\nmutation B { b }\nsubscription C { c }")
    assert [(o.kind, o.name, o.line) for o in doc.operations] == [
        ("query", "A", 1),
        ("mutation", "B", 2),
        ("subscription", "C", 3),
    ]
    (short,) = parse("{ a }").operations
    assert (short.kind, short.name, short.variables) == ("query", None, ())


def test_keywords_are_ordinary_names() -> None:
    (op,) = parse("query query { query: query(query: query) on fragment }").operations
    assert op.name == "query"
    field = op.selections[0]
    assert isinstance(field, Field)
    assert (field.alias, field.name, field.arguments) == ("query", "query", (("query", EnumValue("query")),))


def test_fragments_and_spreads() -> None:
    doc = parse("{ ...F ...onT ...on T { a } } fragment F on T @d { b }")
    sels = doc.operations[0].selections
    assert isinstance(sels[0], FragmentSpread) and sels[0].name == "F"
    assert isinstance(sels[1], FragmentSpread) and sels[1].name == "onT"
    assert isinstance(sels[2], InlineFragment) and sels[2].type_condition == "T"
    frag = doc.fragment("F")
    assert frag is not None and (frag.type_condition, frag.directives[0].name) == ("T", "d")
    assert doc.fragment("missing") is None


def test_directives_everywhere() -> None:
    doc = parse(
        "query Q($v: Boolean = true @var) @op(x: 1) { a @skip(if: $v) ... @include(if: $v) { b } ...F @d }"
        " fragment F on T { c }"
    )
    (op,) = doc.operations
    assert op.directives[0].name == "op" and op.directives[0].arguments == (("x", 1),)
    assert op.variables[0].directives[0].name == "var"
    a, inline, spread = op.selections
    assert a.directives[0].arguments == (("if", VariableRef("v", 1, 58)),)
    assert isinstance(inline, InlineFragment) and inline.type_condition is None
    assert inline.directives[0].name == "include"
    assert spread.directives[0].name == "d"


def test_values_become_python_values() -> None:
    text = (
        '{ f(i: -0, j: 12, k: 1.5e3, l: 1E-2, s: "x\\"y\\u00e9\\u{1F600}\\uD83D\\uDE00\\n", t: true, '
        "u: false, n: null, e: ACTIVE, list: [1, [2], []], obj: {a: {b: [$v]}, c: {}}) }"
    )
    field = parse(text).operations[0].selections[0]
    assert isinstance(field, Field)
    assert dict(field.arguments) == {
        "i": 0,
        "j": 12,
        "k": 1500.0,
        "l": 0.01,
        "s": 'x"yé\U0001f600\U0001f600\n',
        "t": True,
        "u": False,
        "n": None,
        "e": EnumValue("ACTIVE"),
        "list": (1, (2,), ()),
        "obj": {"a": {"b": (VariableRef("v", 1, text.index("$v") + 1),)}, "c": {}},
    }
    assert isinstance(dict(field.arguments)["k"], float) and isinstance(dict(field.arguments)["i"], int)


def test_block_strings() -> None:
    text = '{ f(a: """\n    Hello,\n      World!\n\n    Yours,\n      GraphQL.\n  """, b: """x \\""" y""", c: """""") }'
    field = parse(text).operations[0].selections[0]
    assert isinstance(field, Field)
    assert dict(field.arguments) == {
        "a": "Hello,\n  World!\n\nYours,\n  GraphQL.",
        "b": 'x """ y',
        "c": "",
    }


def test_aliases_and_variable_types() -> None:
    doc = parse("query ($a: [String!], $b: [[Int]!]! = [[1]], $c: ID! = 1) { x: a y: a }")
    assert [(v.type, v.required, v.has_default, v.default) for v in doc.operations[0].variables] == [
        ("[String!]", False, False, None),
        ("[[Int]!]!", False, True, ((1,),)),
        ("ID!", False, True, 1),
    ]
    assert [s.response_key for s in doc.operations[0].selections if isinstance(s, Field)] == ["x", "y"]


def test_ignored_tokens_bom_commas_comments_unicode() -> None:
    doc = parse('\ufeff# comment {\r\n{ a,, b , # x\r c(s: "漢字 é 😀") }\n')
    (op,) = doc.operations
    assert (op.line, op.column) == (2, 1)
    assert [(s.line, s.column) for s in op.selections] == [(2, 3), (2, 7), (3, 2)]


# -- negative cases: exact message and location --------------------------------------------------------

NEGATIVE = [
    ("{a", "expected '}' to close the selection that starts at line 1, found end of query", 1, 3),
    (
        "query {\n  node {\n    id\n",
        "expected '}' to close the selection that starts at line 2, found end of query",
        4,
        1,
    ),
    ("{}", "expected a field name (the selection cannot be empty), found '}'", 1, 2),
    ("{a %}", "unexpected character '%'", 1, 4),
    (
        '{a(b: "abc',
        'unterminated string (the string that starts at line 1, column 7 needs a closing " on the same line)',
        1,
        11,
    ),
    ('{a(b: """ab\nc', 'unterminated string (the string that starts at line 1, column 7 needs a closing """)', 2, 2),
    ("{a(b: 'x')}", "unexpected single quote ('); strings must use double quotes (\")", 1, 7),
    ("{a(b: 1.)}", "expected a digit after '1.', found ')'", 1, 9),
    ("{a(b: 01)}", "unexpected digit '1' after a leading 0; numbers cannot start with 0", 1, 8),
    ("{a(b: 1e)}", "expected a digit after '1e', found ')'", 1, 9),
    ("{a(b: 1e+)}", "expected a digit after '1e+', found ')'", 1, 10),
    ("{a(b: - 1)}", "expected a digit after '-', found a space", 1, 8),
    ("{a(b: 1.5.)}", "unexpected '.' right after the number 1.5", 1, 10),
    ("{1abc}", "unexpected 'a' right after the number 1; names cannot start with a digit", 1, 3),
    ("{a(b: .5)}", "a number cannot start with '.'; did you mean '0.5'?", 1, 7),
    ("{a..b}", "found '..'; did you mean '...'?", 1, 3),
    ('{a(b: "\\x")}', "invalid escape sequence '\\x' in string; use '\\\\' for a backslash", 1, 8),
    ('{a(b: "\\u12G4")}', "invalid unicode escape sequence '\\u12G4' in string", 1, 8),
    ('{a(b: "\\u{110000}")}', "invalid unicode escape sequence '\\u{110000}' in string", 1, 8),
    ("{a(b: \u00a0)}", "unexpected character U+00A0", 1, 7),
    ("", "the query is empty; expected 'query', 'mutation', 'subscription', 'fragment' or '{'", 1, 1),
    ("type Foo { a: Int }", "expected 'query', 'mutation', 'subscription', 'fragment' or '{', found 'type'", 1, 1),
    ("{a}\n}", "expected 'query', 'mutation', 'subscription', 'fragment' or '{', found '}'", 2, 1),
    ("query Q 5", "expected '{' to start the selection of query Q, found the number 5", 1, 9),
    ("query ($a: Int = $b) {a}", "variables are not allowed in a default value", 1, 18),
    ("query ($a) {a}", "expected ':' and a type after '$a', found ')'", 1, 10),
    ("query () {a}", "expected a variable such as $id (the variable list cannot be empty), found ')'", 1, 8),
    ("query ($a: [Int) {a}", "expected ']' to close the list type that starts at line 1, found ')'", 1, 16),
    ("fragment on on T {a}", "a fragment cannot be named 'on'", 1, 10),
    ("fragment F T {a}", "expected 'on' after the fragment name 'F', found 'T'", 1, 12),
    ("{... 5}", "expected a fragment name, 'on' or '{' after '...', found the number 5", 1, 6),
    ("{a(b: [1, 2}", "expected a value or ']' to close the list that starts at line 1, found '}'", 1, 12),
    ("{a(b: {c 1})}", "expected ':' and a value after 'c', found the number 1", 1, 10),
    ("{a(b:)}", "expected a value, found ')'", 1, 6),
    ("{a()}", "expected an argument name (the argument list cannot be empty), found ')'", 1, 4),
    ("{a @}", "expected a directive name after '@', found '}'", 1, 5),
    ('{a: "x"}', "expected a field name after 'a:', found a string", 1, 5),
    (
        "{a(b: 1) 2}",
        "expected a field name or '}' to close the selection that starts at line 1, found the number 2",
        1,
        10,
    ),
    ("{a" * 201 + "}" * 201, "the query is nested more than 200 levels deep", 1, 401),
]


@pytest.mark.parametrize(("text", "message", "line", "column"), NEGATIVE)
def test_syntax_errors(text: str, message: str, line: int, column: int) -> None:
    err = _error(text)
    assert (err.message, err.line, err.column) == (message, line, column)
    assert err.length >= 1
    assert str(err) == f"{message} (line {line}, column {column})"


def test_error_length_covers_the_token() -> None:
    assert _error("{a(b: 12345 6)}").length == 1
    assert _error('query Q "desc" {a}').length == 6
    assert _error("{a(b:1) ...}").length == 1


def test_syntax_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(GraphQLSyntaxError("unterminated string", 2, 5, 3)))
    assert (err.message, err.line, err.column, err.length) == ("unterminated string", 2, 5, 3)


def test_deep_nesting_at_the_limit_parses() -> None:
    parse("{a" * 200 + "}" * 200)
    parse("{a(b:" + "[" * 199 + "]" * 199 + ")}")
    assert _error("{a(b:" + "[" * 200 + "]" * 200 + ")}").column == 205


def test_module_does_not_import_graphql_core() -> None:
    path = Path(__file__).resolve().parent.parent / "mapper" / "language" / "graphql" / "syntax.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gs', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['gs'] = mod; spec.loader.exec_module(mod)\n"
        "mod.parse('{a}')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'graphql'], 'graphql imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- selection_tree ------------------------------------------------------------------------------------


def _tree(text: str) -> dict[str, Node]:
    doc = parse(text)
    return selection_tree(doc, doc.operations[0])


def test_selection_tree_scope_query() -> None:
    conditions = frozenset({"CallSession"})
    leaves = ["id", "startedAt", "endedAt", "duration", "state", "externalData"]
    assert _tree(SCOPE_QUERY) == {
        "node": Node("node", {name: Node(name, None, conditions) for name in leaves}, frozenset())
    }


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


# -- variable_uses -------------------------------------------------------------------------------------


def test_variable_uses_follow_fragments_once() -> None:
    doc = parse(
        "query Q($a: ID, $b: Int) @op(x: $o) { x(id: $a) ...F ...F ... on T @include(if: $i) { y } }\n"
        "fragment F on T @fd(z: $z) { y(n: {m: [$b]}) @skip(if: $c) ...G }\n"
        "fragment G on T { ...F w(q: $q) }"
    )
    uses = variable_uses(doc, doc.operations[0])
    assert [u.name for u in uses] == ["o", "a", "z", "b", "c", "q", "i"]
    assert (uses[3].line, uses[3].column) == (2, 40)


# -- check ---------------------------------------------------------------------------------------------


def _check(text: str) -> list[tuple[str, int, int]]:
    return [(e.message, e.line, e.column) for e in check(parse(text))]


def test_check_clean_documents() -> None:
    assert _check(SCOPE_QUERY) == []
    assert _check("query A($x: Int) { ...F } query B { b } fragment F on T { a(x: $x) }") == []


def test_check_operation_names() -> None:
    assert _check("query A { a }\nquery A { b }") == [
        ("there is more than one operation named 'A'; operation names must be unique", 2, 1)
    ]
    message = "an operation without a name must be the only operation in the query; give it a name"
    assert _check("{ a }\nquery B { b }") == [(message, 1, 1)]
    assert _check("{ a }\n{ b }") == [(message, 1, 1), (message, 2, 1)]


def test_check_fragments() -> None:
    assert _check("{ ...Nope }") == [("unknown fragment 'Nope'; no fragment with that name is defined", 1, 3)]
    assert _check("{ a }\nfragment F on T { a }") == [("fragment 'F' is defined but never used", 2, 1)]
    assert _check("{ ...A }\nfragment A on T { ...B }\nfragment B on T { ...A }") == [
        ("fragments form a cycle (A → B → A); a fragment cannot include itself", 2, 19)
    ]
    assert _check("{ ...A }\nfragment A on T { x ...A }") == [
        ("fragments form a cycle (A → A); a fragment cannot include itself", 2, 21)
    ]
    assert _check("{ ...A }\nfragment A on T { a }\nfragment A on T { b }") == [
        ("there is more than one fragment named 'A'; fragment names must be unique", 3, 1)
    ]


def test_check_variables() -> None:
    assert _check("{ node(id: $foo) { id } }") == [
        ("variable $foo is used but not declared; declare it as `query ($foo: ID!)`", 1, 12)
    ]
    assert _check("query Q($id: ID!) { node(id: $id, x: $x) { id } }") == [
        ("variable $x is used but not declared; declare it as `query Q($id: ID!, $x: ID!)`", 1, 38)
    ]
    assert _check("query ($id: ID!, $unused: Int) { node(id: $id) { id } }") == [
        ("variable $unused is declared but never used", 1, 18)
    ]
    assert _check("query ($id: ID!, $id: ID) { node(id: $id) { id } }") == [
        ("variable $id is declared more than once", 1, 18)
    ]
    assert _check("query ($a: Int) { ...F }\nfragment F on T { x(a: $a, b: $b, c: $b) }") == [
        ("variable $b is used but not declared; declare it as `query ($a: Int, $b: ID!)`", 2, 31)
    ]


# -- differential tests against graphql-core -----------------------------------------------------------

# graphql-core also parses type-system definitions (SDL) and, following the 2025 spec draft, descriptions
# on operations, fragments and variable definitions; the October 2021 executable grammar allows neither, so
# we reject them.  It also accepts empty selection sets by default, which we compare with that option off.
# When graphql-core reports a later error in such a document, ours is at the description or SDL keyword.
_SDL_KEYWORDS = ("schema", "scalar", "type", "interface", "union", "enum", "input", "directive", "extend")


def _core(text: str) -> tuple[bool, tuple[int, int] | None]:
    try:
        doc = graphql.parse(text, allow_empty_selection_sets=False)
    except graphql.GraphQLError as err:
        assert err.locations
        return False, (err.locations[0].line, err.locations[0].column)
    executable = all(
        isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
        and d.description is None
        and all(v.description is None for v in d.variable_definitions or ())
        for d in doc.definitions
    )
    return executable, None


def _ours(text: str) -> tuple[Document | None, GraphQLSyntaxError | None]:
    try:
        return parse(text), None
    except GraphQLSyntaxError as err:
        return None, err


def _offset(text: str, line: int, column: int) -> int:
    starts = [0] + [match.end() for match in _NEWLINE.finditer(text)]
    return starts[line - 1] + column - 1


def _assert_same_verdict(text: str) -> None:
    core_ok, core_loc = _core(text)
    doc, err = _ours(text)
    assert (doc is not None) == core_ok, (text, err, core_loc)
    if err is None or core_loc is None or (err.line, err.column) == core_loc:
        return
    ours_at, core_at = _offset(text, err.line, err.column), _offset(text, *core_loc)
    rest = text[ours_at:]
    assert ours_at < core_at and (rest.startswith('"') or rest.startswith(_SDL_KEYWORDS)), (text, err, core_loc)


CORPUS = [
    "{a}",
    SCOPE_QUERY,
    'query Q($a: [String!]! = ["x"], $b: Int = 1 @d) @op { x: a(b: $a, c: {d: [1, 2.5, -0]}) { id } }',
    "mutation M { a } subscription S { b } query Q2 { c }",
    "{ ...F } fragment F on T { a ...G } fragment G on T { b }",
    '{a(b: "\\u00e9")}',
    '{a(b: "\u00e9 漢字 \U0001f600")}',
    '{a(b: "\\u{1F600} \\uD83D\\uDE00 \\" \\\\ \\/ \\b \\f \\n \\r \\t")}',
    '{a(b: """  block \\""" with "quotes" """)}',
    '{a(b: """\n    indented\n      more\n    """)}',
    '{a(b: """""", c: "", d: "# not a comment")}',
    "\ufeff{a}",
    "{a,,,b,}  # trailing comment",
    "{a\r\nb\rc\n}",
    "{...on T{a}}",
    "{...onT}",
    "{... @include(if: true) { a }}",
    "query query { query: query(query: query) }",
    "{a(b: -0, c: 1e5, d: 1E+5, e: 0.0, f: -1.5e-10, g: {}, h: [], i: {j: [[]]})}",
    "",
    "   # only a comment",
    "{}",
    "{a",
    "{a{b}",
    "query {\n  node {\n    id\n",
    "{a(b: 1.)}",
    "{a(b: 01)}",
    "{a(b: -01)}",
    "{a(b: 1.5.)}",
    "{a(b: 1e)}",
    "{a(b: 1.e5)}",
    "{a(b: -)}",
    "{a(b: 0x1F)}",
    "{a(b: 1_000)}",
    "{1abc}",
    "{a(b: .5)}",
    "{a %}",
    "{a(b: 'x')}",
    '{a(b: "abc',
    '{a(b: "abc\n")}',
    '{a(b: """abc',
    '{a(b: "\\x")}',
    '{a(b: "\\u12G4")}',
    '{a(b: "\\uD800")}',
    '{a(b: "\\uD800\\u0041")}',
    '{a(b: "\\u{110000}")}',
    '{a(b: "\\u{}")}',
    "{a..b}",
    "{a....b}",
    "{a(b: $)}",
    "query ($a: Int = $b) {a}",
    "query ($a) {a}",
    "query () {a}",
    "query Q {a}}",
    "fragment on on T {a}",
    "fragment F T {a}",
    "fragment F on T",
    "{... 5}",
    "type Foo { a: Int }",
    "{a} type Foo {",
    '"description" query {a}',
    'query ("d" $a: Int) {a}',
    '"description" %',
    "foo {a}",
    "{a(b: [1, 2}",
    "{a(b: {c 1})}",
    "{a(b: {c: 1)}",
    "{a(b:)}",
    "{a()}",
    "{a @}",
    "{a: }",
    "{a & b}",
    "query ($a: [Int) {a}",
    "{a}\n\n  }",
    "{a(b: \u00a0)}",
    "{a\x00}",
    "{a(b: 1)\n  c(d: \n",
    "{a" * 201 + "}" * 201,
    "{a" * 200 + "}" * 200,
    "{a(b:" + "[" * 200 + "]" * 200 + ")}",
    "query ($a: " + "[" * 201 + "Int" + "]" * 201 + ") {a}",
]


STRING_LITERALS = [
    '""',
    '"plain"',
    '"\\u00e9\\u{1F600}\\uD83D\\uDE00\\u{0}"',
    '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"é漢字😀\t"',
    '""""""',
    '"""  x \\""" y\t"""',
    '"""\n\n  a\n    b\n\n  c\n   \n"""',
    '"""\r\n\t a\r  b\r\n"""',
    '"""\\n\\u0041"""',
]


@pytest.mark.parametrize("literal", STRING_LITERALS)
def test_string_values_match_graphql_core(literal: str) -> None:
    field = parse(f"{{a(b: {literal})}}").operations[0].selections[0]
    assert isinstance(field, Field)
    core_value = graphql.parse_value(literal)
    assert isinstance(core_value, graphql.language.StringValueNode)
    assert field.arguments == (("b", core_value.value),)


@pytest.mark.parametrize("text", CORPUS)
def test_corpus_matches_graphql_core(text: str) -> None:
    _assert_same_verdict(text)


_PIECES = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "$",
    "@",
    "...",
    "..",
    ".",
    "!",
    "=",
    "&",
    "|",
    ",",
    " ",
    "\n",
    "\r\n",
    "\t",
    "# c\n",
    "\ufeff",
    "query",
    "mutation",
    "fragment",
    "on",
    "a",
    "_b",
    "T",
    "true",
    "null",
    "type",
    "0",
    "1",
    "-0",
    "01",
    "1.",
    "1.5",
    "1e5",
    "1e",
    "-",
    ".5",
    "1a",
    '"s"',
    '"',
    '"\\u00e9"',
    '"\\q"',
    '"""b"""',
    '"""',
    '\\"""',
    "é",
    "%",
    "'",
]
_NAMES = st.sampled_from(["a", "b", "id", "node", "on", "query", "fragment", "true", "null", "_x", "T"])
_VALUES = st.recursive(
    st.sampled_from(["1", "-0", "1.5e3", '"s"', '"\\u00e9"', '"""x\n  y"""', "true", "null", "ENUM", "$v"]),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(_NAMES, inner), max_size=3).map(lambda kv: "{" + " ".join(f"{k}: {v}" for k, v in kv) + "}"),
    ),
    max_leaves=5,
)
_ARGS = st.lists(st.tuples(_NAMES, _VALUES), max_size=2).map(
    lambda kv: "(" + ", ".join(f"{k}: {v}" for k, v in kv) + ")" if kv else ""
)
_SELECTION = st.recursive(
    st.one_of(st.tuples(_NAMES, _ARGS).map("".join), st.just("...F")),
    lambda inner: st.one_of(
        st.tuples(_NAMES, _ARGS, st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: f"{t[0]}{t[1]} {{ {' '.join(t[2])} }}"
        ),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: "... on T { " + " ".join(xs) + " }"),
    ),
    max_leaves=6,
)
_DOCUMENTS = st.tuples(
    st.sampled_from(["", "query ", "query Q($v: [Int!] = [1]) ", "mutation M @d(x: 1) "]),
    st.lists(_SELECTION, min_size=1, max_size=3),
    st.booleans(),
).map(lambda t: f"{t[0]}{{ {' '.join(t[1])} }}" + (" fragment F on T { a }" if t[2] else ""))


@st.composite
def _mutated_documents(draw: st.DrawFn) -> str:
    text = draw(_DOCUMENTS)
    start = draw(st.integers(0, len(text)))
    action = draw(st.sampled_from(["keep", "delete", "insert", "truncate"]))
    if action == "delete":
        return text[:start] + text[start + draw(st.integers(1, 3)) :]
    if action == "insert":
        return text[:start] + draw(st.sampled_from(_PIECES)) + text[start:]
    return text[:start] if action == "truncate" else text


_SOUP = st.lists(st.sampled_from(_PIECES), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_mutated_documents(), _SOUP, st.text(max_size=30)))
def test_generated_documents_match_graphql_core(text: str) -> None:
    _assert_same_verdict(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), _SOUP, _mutated_documents()))
def test_random_text_only_raises_syntax_errors(text: str) -> None:
    try:
        doc = parse(text)
    except GraphQLSyntaxError as err:
        assert err.message and err.length >= 1
        assert 1 <= err.line <= len(_NEWLINE.split(text))
        assert err.column >= 1
        return
    for op in doc.operations:
        selection_tree(doc, op)
        variable_uses(doc, op)
    for problem in check(doc):
        assert problem.line >= 1 and problem.column >= 1
