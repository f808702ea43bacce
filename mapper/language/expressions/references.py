"""The names an expression or template reads, as chains (`steps.lookup.sys_id` → ("steps", "lookup", "sys_id")).

The compiler resolves each chain's first name (and the step and capture names after `steps`) before any
event runs, so a typo is a located error in `wlmap validate`, not a null at run time.

With `through_json` a chain goes on through `from_json(...)` (JMESPath) or `| from_json` (Jinja):
`from_json(result.node.externalData).incident` reads ("result", "node", "externalData", "incident"). The
deep link contract uses these to see which `externalData` parameters a mapping reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2 import nodes

Chain = tuple[str, ...]  # a name and the attributes read from it: ("steps", "lookup", "sys_id")

# Node kinds whose first child is evaluated against the root and the rest against what it gave.
_RELATIVE_AFTER_FIRST = frozenset(
    {"subexpression", "index_expression", "pipe", "projection", "value_projection", "filter_projection", "flatten"}
)


def query_chains(node: dict[str, Any], through_json: bool = False) -> Iterator[Chain]:
    """Paths a JMESPath AST reads from its root (fields inside projections and filters are relative)."""
    meant = not_first(node)
    if meant is not None:  # `!steps.a.b` reads (!steps).a.b; its names are checked as the `!(steps.a.b)` meant
        node = meant
    chain = _query_chain(node, through_json)
    if chain is not None:
        yield chain
        return
    kind = node["type"]
    children = node.get("children", [])
    if kind in _RELATIVE_AFTER_FIRST:
        if children:
            yield from query_chains(children[0], through_json)
        return
    if kind == "expref":
        return
    for child in children:
        yield from query_chains(child, through_json)


def _query_chain(node: dict[str, Any], through_json: bool = False) -> Chain | None:
    """`a.b[0].c` → ("a", "b", "c"); None when the node is not a plain path."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if through_json and kind == "function_expression" and node["value"] == "from_json" and len(node["children"]) == 1:
        return _query_chain(node["children"][0], through_json)
    if kind in ("subexpression", "index_expression"):
        chain: Chain = ()
        for child in node["children"]:
            if child["type"] == "index":
                continue
            part = _query_chain(child, through_json)
            if part is None:
                return None
            chain += part
        return chain
    return None


def template_chains(tree: nodes.Template, through_json: bool = False) -> Iterator[Chain]:
    """Names a Jinja template reads from its scope, with the attributes taken from them."""
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.With, nodes.AssignBlock)):
        for target in node.find_all(nodes.Name):
            if target.ctx in ("store", "param"):
                assigned.add(target.name)
    yield from _chains_in(tree, assigned, through_json)


def _chains_in(node: nodes.Node, assigned: set[str], through_json: bool) -> Iterator[Chain]:
    chain = template_chain(node, through_json=through_json)
    if chain is not None:
        if chain[0] not in assigned and chain[0] != "loop":
            yield chain
        # arguments of a Getitem with a non-constant key still read names
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const):
            yield from _chains_in(node.arg, assigned, through_json)
        return
    for child in node.iter_child_nodes():
        yield from _chains_in(child, assigned, through_json)


def template_chain(node: nodes.Node, strict: bool = False, through_json: bool = False) -> Chain | None:
    """`name.attr['key']` → ("name", "attr", "key"); None for other nodes.

    A key that is not constant text is skipped (`a[i].b` → ("a", "b")); with `strict` the node gives None.
    """
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if through_json and isinstance(node, nodes.Filter) and node.name == "from_json" and node.node is not None:
        return template_chain(node.node, strict, through_json)
    if isinstance(node, nodes.Getattr):
        head = template_chain(node.node, strict, through_json)
        return (*head, node.attr) if head is not None else None
    if isinstance(node, nodes.Getitem):
        head = template_chain(node.node, strict, through_json)
        if head is None:
            return None
        if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            return (*head, node.arg.value)
        return None if strict else head
    return None


def not_first(node: dict[str, Any]) -> dict[str, Any] | None:
    """`!a.b`: JMESPath binds `!` to `a` alone, so the path is read from `!a` (true or false) and is always null.
    The path the author meant, `a.b` (without the `!`), or None when the node is not of that shape."""
    children = node.get("children") or []
    if node["type"] not in ("subexpression", "index_expression") or not children:
        return None
    first = children[0]
    if first["type"] != "not_expression" or not first.get("children"):
        return None
    return {**node, "children": [first["children"][0], *children[1:]]}
