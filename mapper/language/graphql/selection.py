"""The response shape a query selects: fields merged over aliases, inline fragments and fragment spreads.

The compiler checks `result.node.startedAt` against it, so a name the query does not select is a located
error in `wlmap validate` instead of a null at run time.
"""

from __future__ import annotations

from typing import NamedTuple

from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


class Node(NamedTuple):  # one response key of a merged selection; children is None for a leaf
    field_name: str
    children: dict[str, Node] | None
    type_conditions: frozenset[str] = frozenset()


_Entry = tuple[FieldNode, frozenset[str], frozenset[str]]  # a field, its type conditions, fragments on its path
_Fragments = dict[str, FragmentDefinitionNode]


def selection_tree(document: DocumentNode, operation: OperationDefinitionNode) -> dict[str, Node]:
    """The merged response shape of `operation`.

    A node's type_conditions are the fragment types it was selected under (empty if it is also selected
    unconditionally); fragment cycles and unknown fragments are cut (the checks report them).
    """
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    return _merge(fragments, [(operation.selection_set, frozenset())])


def _merge(fragments: _Fragments, parts: list[tuple[SelectionSetNode | None, frozenset[str]]]) -> dict[str, Node]:
    groups: dict[str, list[_Entry]] = {}
    for selections, path in parts:
        _collect(fragments, selections, frozenset(), path, groups)
    tree: dict[str, Node] = {}
    for key, entries in groups.items():
        children = None
        if any(f.selection_set is not None for f, _, _ in entries):
            children = _merge(fragments, [(f.selection_set, path) for f, _, path in entries])
        unconditional = any(not conditions for _, conditions, _ in entries)
        conditions = frozenset[str]().union(*(c for _, c, _ in entries)) if not unconditional else frozenset()
        tree[key] = Node(entries[0][0].name.value, children, conditions)
    return tree


def _collect(
    fragments: _Fragments,
    selections: SelectionSetNode | None,
    conditions: frozenset[str],
    path: frozenset[str],
    groups: dict[str, list[_Entry]],
) -> None:
    for selection in selections.selections if selections is not None else ():
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            groups.setdefault(key, []).append((selection, conditions, path))
        elif isinstance(selection, InlineFragmentNode):
            extra = {selection.type_condition.name.value} if selection.type_condition else set()
            _collect(fragments, selection.selection_set, conditions | extra, path, groups)
        elif not isinstance(selection, FragmentSpreadNode):
            continue
        elif (fragment := fragments.get(selection.name.value)) is not None and fragment.name.value not in path:
            extra = {fragment.type_condition.name.value}
            _collect(fragments, fragment.selection_set, conditions | extra, path | {fragment.name.value}, groups)
