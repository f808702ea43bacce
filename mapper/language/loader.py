"""Find mapping files and load each one: read → check → compile. `wlmap validate` and the runner both call this."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapper.errors import Location, MappingError, Problem
from mapper.language import compiler, schema, source
from mapper.language.compiler.references import UNSET_HINT, unset_message
from mapper.language.plan import Plan

__all__ = ["UNSET_HINT", "Loaded", "load", "load_file", "load_plans", "load_text", "mapping_files", "unset_message"]

TEST_SUFFIX = ".tests.yaml"
DEFAULTS = compiler.Options()


@dataclass
class Loaded:
    plans: list[Plan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def mapping_files(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    """Every mapping file named or found below the folders named (test files `*.tests.yaml` excluded)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and not p.name.endswith(TEST_SUFFIX)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                problems.append(
                    Problem(Location(str(path)), "no mapping files (*.yaml) in this folder", severity="warning")
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(Location(str(path)), "no such file or folder"))
    return files, problems


def load_file(
    path: Path, options: compiler.Options = DEFAULTS, name: str | None = None
) -> tuple[Plan | None, list[Problem]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(Location(name or str(path)), f"cannot read the file: {exc.strerror}")]
    return load_text(raw, name or str(path), options)


def load_text(text: str | bytes, name: str, options: compiler.Options = DEFAULTS) -> tuple[Plan | None, list[Problem]]:
    """Read the YAML, check its shape against the schema, compile it; every problem of the three, sorted."""
    document, problems = source.read(text, name)
    if document is None:
        return None, problems
    shape = schema.check(document)
    plan, more = compiler.compile_plan(document, options, shape_errors=any(p.severity == "error" for p in shape))
    combined = sorted(problems + shape + more, key=lambda p: p.sort_key)
    if any(p.severity == "error" for p in combined):
        return None, combined
    return plan, combined


def load(
    paths: Iterable[Path],
    env: Mapping[str, str] | None = None,
    graphql_schema: Any = None,
    graphql_schemas: Mapping[str, Any] | None = None,
) -> Loaded:
    """Load every mapping under `paths`; mapping names must be unique across files.

    `graphql_schema`: the Scope AR API's schema (for `query:`); `graphql_schemas`: a schema per connection name."""
    files, problems = mapping_files(paths)
    loaded = Loaded(problems=problems, files=files)
    texts: dict[Path, bytes] = {}
    for file in files:
        try:
            texts[file] = file.read_bytes()
        except OSError as exc:
            loaded.problems.append(Problem(Location(str(file)), f"cannot read the file: {exc.strerror}"))
    used = {file: _env_names(raw) for file, raw in texts.items()}
    names: dict[str, str] = {}
    for file, raw in texts.items():
        elsewhere = frozenset().union(*(names for other, names in used.items() if other != file))
        options = compiler.Options(env, graphql_schema, dict(graphql_schemas or {}), elsewhere)
        plan, found = load_text(raw, str(file), options)
        loaded.problems.extend(found)
        if plan is None:
            continue
        if plan.name in names:
            loaded.problems.append(
                Problem(
                    plan.trigger.location.__class__(str(file), 1, 1),
                    f"mapping name `{plan.name}` is already used by {names[plan.name]}",
                    hint="give each mapping its own `name`",
                )
            )
            continue
        names[plan.name] = str(file)
        loaded.plans.append(plan)
    loaded.problems.sort(key=lambda p: p.sort_key)
    return loaded


_ENV_NAME = re.compile(rb"""\benv\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])""")


def _env_names(raw: bytes) -> frozenset[str]:
    """The env names a mapping's text reads (a quick look for "did you mean" hints, not a compile)."""
    return frozenset((a or b).decode("utf-8", "replace") for a, b in _ENV_NAME.findall(raw))


def load_plans(paths: Iterable[Path], env: Mapping[str, str] | None = None) -> list[Plan]:
    """The plans, or MappingError with every error (for the runner and the listener)."""
    loaded = load(paths, env)
    if loaded.errors:
        raise MappingError(loaded.problems)
    return loaded.plans
