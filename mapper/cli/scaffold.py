"""`wlmap new NAME --target KIND`: a commented mapping and its tests file that pass `validate` and `test` at once.

The files are the templates beside this module (templates/<kind>.yaml and .tests.yaml) with the name and paths
filled in; they are a starting point for the reader to edit, so they say in comments what each part is for.
"""

from __future__ import annotations

import enum
import os
import re
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # the mapping schema's `name` pattern


class Target(enum.StrEnum):
    servicenow = "servicenow"
    sap = "sap"
    maximo = "maximo"
    rest = "rest"
    graphql = "graphql"


def new_command(
    name: Annotated[str, typer.Argument(help="The mapping's name: lower-case letters, digits, - and _.")],
    target: Annotated[Target, typer.Option("--target", help="The kind of system the mapping writes to.")],
    folder: Annotated[Path, typer.Option("--folder", help="Where to write the two files.")] = Path("mappings"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a commented mapping and its test cases for a kind of target; both pass validate and test as written."""
    if NAME.fullmatch(name) is None or len(name) > 80:
        typer.echo(f"wlmap new: `{name}` cannot be a mapping name: use lower-case letters, digits, - and _", err=True)
        raise typer.Exit(2)
    mapping, tests = folder / f"{name}.yaml", folder / f"{name}.tests.yaml"
    existing = [str(path) for path in (mapping, tests) if path.exists()]
    if existing and not force:
        typer.echo(f"wlmap new: {' and '.join(existing)} already exist; pass --force to overwrite", err=True)
        raise typer.Exit(1)
    values = {"__NAME__": name, "__FILE__": str(mapping), "__TESTS__": str(tests)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mapping.write_text(_modeline(folder, "mapping") + _filled(f"{target}.yaml", values), encoding="utf-8")
        tests.write_text(_modeline(folder, "tests") + _filled(f"{target}.tests.yaml", values), encoding="utf-8")
    except OSError as exc:
        typer.echo(f"wlmap new: cannot write {exc.filename}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {mapping} and {tests}\nnext:  wlmap validate {mapping} && wlmap test {mapping}")


def _filled(template: str, values: dict[str, str]) -> str:
    text = files("mapper.cli").joinpath("templates", template).read_text(encoding="utf-8")
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def _modeline(folder: Path, kind: str) -> str:
    """The editor's schema line, when the project's schemas/ folder is here to point at."""
    schema = Path("schemas") / f"{kind}.schema.json"
    if not schema.exists():
        return ""
    return f"# yaml-language-server: $schema={Path(os.path.relpath(schema, folder)).as_posix()}\n"
