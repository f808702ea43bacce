"""One list of service options: `wlmap run --serve` takes every ServiceOptions field with its default, and the
table in docs/operations.md (Configuration) names the same options with the same defaults."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from mapper.cli import main
from mapper.service.options import ServiceOptions
from mapper.service.store.postgres import MAX_CONNECTIONS

ROOT = Path(__file__).resolve().parent.parent
FIELDS = frozenset(field.name for field in dataclasses.fields(ServiceOptions))
NOT_OPTIONS = {"secrets", "links_token", "env", "reload_interval"}  # from the environment, and a fixed second


def serve_options() -> dict[str, Any]:
    """`wlmap run`'s options that set a ServiceOptions field (click options: typer may vendor click), by field."""
    app = typer.Typer()
    app.command()(main.run)
    params = typer.main.get_command(app).params
    return {p.name: p for p in params if p.param_type_name == "option" and p.name in FIELDS}


def documented() -> dict[str, str]:
    """The Configuration table of docs/operations.md: option → its default cell."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| option | default | meaning |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    for row in table.splitlines():
        option, default = (cell.strip() for cell in row.strip("|").split(" | ")[:2])
        for name in re.findall(r"`(--[a-z-]+)", option):
            rows[name] = default
    return rows


def as_documented(value: Any) -> str:
    """A default as the docs write it: `8080`, `0.5`, off, none."""
    if value is None:
        return "none"
    if value is False:
        return "off"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def test_every_service_option_is_on_the_command_line_with_the_same_default() -> None:
    options = serve_options()
    assert sorted(FIELDS - NOT_OPTIONS - set(options)) == []
    defaults = {field.name: field.default for field in dataclasses.fields(ServiceOptions) if field.name in options}
    defaults["mappings"] = None  # none given: the PATHS, else the `mappings` folder (ServiceOptions' default)
    assert {name: p.default for name, p in options.items()} == defaults


def test_the_documented_options_and_defaults_are_the_command_lines() -> None:
    docs = documented()
    flags = {p.opts[0]: p for p in serve_options().values()}
    assert sorted(flag for flag, p in flags.items() if p.hidden) == ["--runner", "--time-scale"]
    assert sorted(flag for flag, p in flags.items() if not p.hidden and flag not in docs) == []
    assert sorted(set(docs) - set(flags)) == []
    shown = {flag: as_documented(p.default) for flag, p in flags.items()}
    shown["--mappings"] = as_documented(ServiceOptions().mappings[0])
    shown["--store-connections"] = as_documented(MAX_CONNECTIONS)  # None: the store's own default
    assert {flag: cell for flag, cell in docs.items() if shown[flag] not in cell} == {}


def test_the_documented_options_are_in_the_help() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "mapper.cli", "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert sorted(flag for flag in documented() if flag not in shown) == []
    assert "--time-scale" not in shown and "--runner" not in shown
