"""Values for a link checked against the mapping's `link:` contract; every problem in plain words.

The same messages reach the command line (`wlmap link`) and the HTTP endpoint (`GET /links/...`, a 400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache

from mapper.errors import did_you_mean
from mapper.language.plan import Link, LinkParameter

MAX_TARGET_ID = 200  # characters; Scope AR ids are short, this only keeps the QR code readable
_TYPES = {
    "integer": (re.compile(r"-?[0-9]+"), "a whole number"),
    "number": (re.compile(r"-?[0-9]+(\.[0-9]+)?"), "a number"),
    "boolean": (re.compile(r"true|false"), "`true` or `false`"),
}


class LinkError(Exception):
    """The values do not keep to the link contract (or the link cannot be made); `problems` says each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def check(link: Link, values: Mapping[str, str], target_id: str | None) -> tuple[str, list[tuple[str, str]]]:
    """The target id and the parameters in declared order; LinkError with every problem otherwise.

    An optional parameter given empty is left out of the link (a form field left blank), so it is missing
    from `externalData`, not "".
    """
    problems = [_unknown(link, name) for name in values if link.parameter(name) is None]
    pairs: list[tuple[str, str]] = []
    for parameter in link.parameters:
        value = values.get(parameter.name)
        if not value:  # missing, or empty: a required one needs a value, an optional one is left out
            if parameter.required:
                problems.append(f"`{parameter.name}` is required")
            continue
        problem = _problem(parameter, value)
        if problem:
            problems.append(problem)
        else:
            pairs.append((parameter.name, value))
    target, problem = _target(link, target_id)
    if problem:
        problems.insert(0, problem)
    if problems:
        raise LinkError(problems)
    return target, pairs


def _unknown(link: Link, name: str) -> str:
    names = [p.name for p in link.parameters]
    shown = name if _is_text(name) else name.encode("utf-8", "backslashreplace").decode()
    hint = did_you_mean(shown, names) or (f"it takes: {', '.join(names)}" if names else "it takes none")
    return f"`{shown}` is not a parameter of this link: {hint}"


def _problem(parameter: LinkParameter, value: str) -> str | None:
    name = parameter.name
    if not _is_text(value):
        return f"`{name}` is not valid text"
    if parameter.type in _TYPES:
        form, words = _TYPES[parameter.type]
        if not form.fullmatch(value):
            return f"`{name}` must be {words}, not {_shown(value)}"
    if parameter.max_length is not None and len(value) > parameter.max_length:
        return f"`{name}` is {len(value)} characters long; at most {parameter.max_length} are allowed"
    if parameter.pattern is not None and not _compiled(parameter.pattern).fullmatch(value):
        return f"`{name}` {_shown(value)} does not match the pattern `{parameter.pattern}`"
    return None


def _target(link: Link, given: str | None) -> tuple[str, str | None]:
    """The id of what the link opens: fixed by the mapping, or given with the link."""
    if link.target_id is not None:
        if given is not None and given != link.target_id:
            return "", f"this link always opens {link.target} {_shown(link.target_id)} (`target_id` in the mapping)"
        return link.target_id, None
    if not given:
        return "", f"the link needs the `{link.target}` it opens (its id)"
    if not _is_text(given) or len(given) > MAX_TARGET_ID:
        return "", f"the `{link.target}` id is not valid text of at most {MAX_TARGET_ID} characters"
    return given, None


def _is_text(value: str) -> bool:
    """False for a lone surrogate (undecodable bytes on a command line): it cannot be sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: str) -> str:
    """A value quoted for a message: JSON escapes show control characters; a long one is cut."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 62 else text[:60] + '…"'


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
