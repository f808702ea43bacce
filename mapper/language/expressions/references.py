"""The names an expression or template reads, as chains (`steps.lookup.sys_id` → ("steps", "lookup", "sys_id")).

The compiler resolves each chain's first name (and the step and capture names after `steps`) before any
event runs, so a typo is a located error in `wlmap validate`, not a null at run time.
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


def query_chains(node: dict[str, Any]) -> Iterator[Chain]:
    """Paths a JMESPath AST reads from its root (fields inside projections and filters are relative)."""
    meant = not_first(node)
    if meant is not None:  # `!steps.a.b` reads (!steps).a.b; its names are checked as the `!(steps.a.b)` meant
        node = meant
    chain = _query_chain(node)
    if chain is not None:
        yield chain
        return
    kind = node["type"]
    children = node.get("children", [])
    if kind in _RELATIVE_AFTER_FIRST:
        if children:
            yield from query_chains(children[0])
        return
    if kind == "expref":
        return
    for child in children:
        yield from query_chains(child)


def _query_chain(node: dict[str, Any]) -> Chain | None:
    """`a.b[0].c` → ("a", "b", "c"); None when the node is not a plain path."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind in ("subexpression", "index_expression"):
        chain: Chain = ()
        for child in node["children"]:
            if child["type"] == "index":
                continue
            part = _query_chain(child)
            if part is None:
                return None
            chain += part
        return chain
    return None


def template_chains(tree: nodes.Template) -> Iterator[Chain]:
    """Names a Jinja template reads from its scope, with the attributes taken from them."""
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.Macro, nodes.With, nodes.AssignBlock)):
        for target in node.find_all(nodes.Name):
            if target.ctx in ("store", "param"):
                assigned.add(target.name)
    yield from _chains_in(tree, assigned)


def _chains_in(node: nodes.Node, assigned: set[str]) -> Iterator[Chain]:
    chain = template_chain(node)
    if chain is not None:
        if chain[0] not in assigned and chain[0] != "loop":
            yield chain
        # arguments of a Getitem with a non-constant key still read names
        if isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Const):
            yield from _chains_in(node.arg, assigned)
        return
    for child in node.iter_child_nodes():
        yield from _chains_in(child, assigned)


def template_chain(node: nodes.Node, strict: bool = False) -> Chain | None:
    """`name.attr['key']` → ("name", "attr", "key"); None for other nodes.

    A key that is not constant text is skipped (`a[i].b` → ("a", "b")); with `strict` the node gives None.
    """
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        head = template_chain(node.node, strict)
        return (*head, node.attr) if head is not None else None
    if isinstance(node, nodes.Getitem):
        head = template_chain(node.node, strict)
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
