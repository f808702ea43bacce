"""`link:` → the deep link the mapping expects, checked against what the mapping reads from `externalData`.

Both sides of the contract: every `externalData.<name>` read anywhere in the mapping must be a declared
parameter (an error, with "did you mean"), and every declared parameter should be read somewhere (a warning).
A read goes on through `from_json(...)`, so `from_json(result.node.externalData).incident` reads `incident`.
"""

from __future__ import annotations

import re
from typing import Any, cast

from mapper.errors import did_you_mean
from mapper.language.compiler.context import Compilation
from mapper.language.compiler.references import locate
from mapper.language.expressions import Chain
from mapper.language.plan import (
    EXTERNAL_DATA,
    LINK_KEY_ENV,
    RESERVED_PARAMETERS,
    SIGNATURE_PARAMETER,
    Link,
    LinkParameter,
    ParameterType,
)
from mapper.language.source import Path

PATH: Path = ("link",)


def link(c: Compilation, data: Any, shape_errors: bool) -> Link | None:
    """The compiled `link:` section (None without one); `shape_errors`: leave out the unused-parameter warnings."""
    if not isinstance(data, dict):
        return None
    given = data.get("parameters")
    parameters = [_parameter(c, name, spec) for name, spec in (given.items() if isinstance(given, dict) else [])]
    declared = tuple(p for p in parameters if p is not None)
    signed = data.get("signed") is True
    source = _check_reads(c, declared, signed, warn_unused=not shape_errors)
    if signed:
        _signing_key(c, source)
    target_id = data.get("target_id")
    return Link(
        location=c.doc.location(PATH),
        action=str(data.get("action") or "fetch_catalog"),
        target=str(data.get("target") or "asset"),
        target_id=str(target_id) if isinstance(target_id, str | int) else None,
        parameters=declared,
        signed=signed,
        external_data=source,
    )


def _parameter(c: Compilation, name: Any, spec: Any) -> LinkParameter | None:
    path: Path = (*PATH, "parameters", name)
    if not isinstance(name, str):
        return None
    if name in RESERVED_PARAMETERS:
        c.error(
            path,
            f"`{name}` cannot be a link parameter: the link itself uses that name",
            f"choose another name; taken: {', '.join(sorted(RESERVED_PARAMETERS))}",
            key=True,
        )
        return None
    if isinstance(spec, str):  # the short form: `incident: string`
        spec = {"type": spec}
    if not isinstance(spec, dict):
        spec = {}
    pattern = spec.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            at = c.doc.location_in_scalar((*path, "pattern"), exc.pos or 0, 1)
            c.error((*path, "pattern"), f"this pattern is not a regular expression: {exc.msg}", location=at)
    max_length = spec.get("max_length")
    return LinkParameter(
        name=name,
        location=c.doc.location(path, key=True),
        type=cast(ParameterType, spec.get("type") or "string"),
        required=spec.get("required") is True,
        pattern=pattern if isinstance(pattern, str) else None,
        max_length=max_length if isinstance(max_length, int) and not isinstance(max_length, bool) else None,
        description=str(spec.get("description") or ""),
    )


def _check_reads(c: Compilation, declared: tuple[LinkParameter, ...], signed: bool, warn_unused: bool) -> Chain:
    """Check every `externalData.<name>` read; the path to externalData the mapping reads first (its source)."""
    names = [p.name for p in declared]
    known = {*names, SIGNATURE_PARAMETER} if signed else set(names)
    read: set[str] = set()
    whole = False  # externalData read as a whole (`ext: result.node.externalData`): which names, we cannot say
    sources: list[tuple[Path, Chain]] = []
    for path, text, chain in c.link_reads:
        at = chain.index(EXTERNAL_DATA, 1)
        sources.append((path, chain[: at + 1]))
        if at + 1 == len(chain):
            whole = True
            continue
        name = chain[at + 1]
        read.add(name)
        if name not in known:
            hint = did_you_mean(name, names) or (
                f"the link declares: {', '.join(names)}" if names else "declare it under `link: parameters:`"
            )
            c.error(path, f"`{name}` is not a parameter of the deep link", hint, location=locate(c, path, text, name))
    if warn_unused and not whole and not c.problems.has_errors:  # after an error, some reads may be unseen
        for parameter in declared:
            if parameter.name not in read:
                c.warning(
                    (*PATH, "parameters", parameter.name),
                    f"link parameter `{parameter.name}` is never read",
                    f"read it as `externalData.{parameter.name}` (in `extract`, say), or remove it from the link",
                    key=True,
                )
    # The runner and `wlmap test` need one place: the first read in `extract`, else the first read at all.
    in_extract = [chain for path, chain in sources if path[:1] == ("extract",)]
    return (in_extract or [chain for _, chain in sources] or [()])[0]


def _signing_key(c: Compilation, source: Chain) -> None:
    path: Path = (*PATH, "signed")
    if not source:
        c.error(
            path,
            "a signed link needs the mapping to read `externalData`: the signature is checked there",
            "read the parameters in `extract`, e.g. `incident: result.node.externalData.incident`",
        )
    c.env_names.add(LINK_KEY_ENV)  # its value is masked in traces like any secret the mapping uses
    if c.options.env is not None and LINK_KEY_ENV not in c.options.env:
        c.warning(
            path,
            f"environment variable `{LINK_KEY_ENV}` is not set",
            "set it to the key that signs the links (the same for `wlmap link`, the listener and the workers)",
        )
