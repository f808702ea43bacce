"""A test case's deep link parameters → the link → what WorkLink keeps → the case's `externalData`.

So a case proves the whole round trip: the link the system of record would show (built and checked by the
same code as `wlmap link`), read back as a URL, arriving where the mapping reads `externalData` (the GraphQL
answer for `result...`, the webhook body for `payload...`), and the requests that follow.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from mapper.language.plan import LINK_KEY_ENV, Plan
from mapper.links import LinkError, build, signing, text
from mapper.rehearse.tests_file import Case


def with_link(plan: Plan, case: Case) -> Case:
    """The case with its link's parameters in place of externalData; LinkError when that cannot be done."""
    if case.link is None:
        return case
    link = plan.link
    if link is None:
        raise LinkError(["the mapping declares no `link:`, so a case cannot give `link`"])
    if not link.external_data or link.external_data[0] not in ("result", "payload"):
        raise LinkError(["the mapping reads no externalData from `result` or `payload`: there is nowhere to put it"])
    values = dict(case.link)
    target_id = values.pop(link.target, None)
    built = build(link, values, target_id, signing.keys_from(case.env.get(LINK_KEY_ENV)))
    stored = text.external_data(built.link, link.target)  # read back from the link text, as WorkLink would
    root, *path = link.external_data
    if root == "result":
        graphql = copy.deepcopy(case.graphql) if isinstance(case.graphql, dict) else {}
        _put(graphql, ["data", *path], stored)
        return dataclasses.replace(case, graphql=graphql)
    event = _parsed(case.event)
    _put(event, path, stored)
    return dataclasses.replace(case, event=event)


def _parsed(event: Any) -> dict[str, Any]:
    if isinstance(event, bytes | str):
        try:
            event = json.loads(event)
        except ValueError:
            raise LinkError(["the case's event is not JSON, so the link's parameters cannot be put in it"]) from None
    if not isinstance(event, dict):
        raise LinkError(["the case's event is not a JSON object, so the link's parameters cannot be put in it"])
    return copy.deepcopy(event)


def _put(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at `path`, making the objects on the way (and replacing what is not one)."""
    for name in path[:-1]:
        if not isinstance(data.get(name), dict):
            data[name] = {}
        data = data[name]
    data[path[-1]] = value
