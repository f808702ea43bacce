"""PyYAML loaders that compose nodes only: no tags resolved, aliases and anchors noted instead of followed.

libyaml's C parser is tried first (several times faster); on any problem the text is read again by PyYAML's
pure-Python parser, whose errors `problems` words, so the messages never depend on which one ran.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml
import yaml.composer
import yaml.resolver
from yaml.events import AliasEvent
from yaml.nodes import Node, ScalarNode

IMPLICIT = "tag:wlmap,implicit"  # the tag of every node no tag was written on

try:
    from yaml._yaml import CParser  # libyaml, in every PyYAML wheel

    _FAST = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _FAST = False
# What PyYAML's reader refuses (it words the problem; libyaml would too, differently).
_CONTROL = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Checks:
    """Composes nodes only; never resolves tags, and notes aliases and anchors instead of following them."""

    aliases: dict[int, str]  # placeholder node → the alias it replaces
    anchored: dict[int, str]  # node → the anchor written on it

    if TYPE_CHECKING:  # supplied by the parser each loader is combined with

        def check_event(self, *choices: Any) -> bool: ...
        def get_event(self) -> Any: ...
        def peek_event(self) -> Any: ...
        def get_single_node(self) -> Node | None: ...
        def dispose(self) -> None: ...

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return IMPLICIT

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.get_event()
            placeholder = ScalarNode(IMPLICIT, "", event.start_mark, event.end_mark)
            self.aliases[id(placeholder)] = str(event.anchor)
            return placeholder
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        event.anchor = None  # never registered, so an alias can never expand to it
        node: Node | None = super().compose_node(parent, index)  # type: ignore[misc]
        if anchor is not None and node is not None:
            self.anchored[id(node)] = str(anchor)
        if isinstance(node, ScalarNode) and node.style == "":
            node.style = None  # libyaml says "" for a plain scalar, PyYAML None
        return node


class _Loader(Checks, yaml.SafeLoader):
    """The pure-Python loader: it words syntax errors, and refuses control characters in its reader."""

    def __init__(self, text: str) -> None:
        yaml.SafeLoader.__init__(self, text)
        self.aliases, self.anchored = {}, {}


if _FAST:

    class _FastLoader(Checks, yaml.composer.Composer, CParser, yaml.resolver.Resolver):
        """libyaml's C scanner and parser (several times faster) feeding the same Python composer and checks.

        Used first; on any problem the file is read again with `_Loader`, so messages are always the same.
        """

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.aliases, self.anchored = {}, {}


def compose(text: str) -> tuple[Node | None, Checks]:
    """The node tree: libyaml first; if it finds anything wrong, PyYAML again, which says what in our words."""
    if _FAST and not _CONTROL.search(text):
        fast = _FastLoader(text)
        try:
            return fast.get_single_node(), fast
        except (yaml.YAMLError, RecursionError):
            pass
        finally:
            fast.dispose()
    slow = _Loader(text)  # its reader refuses control characters already here
    try:
        return slow.get_single_node(), slow
    finally:
        slow.dispose()
