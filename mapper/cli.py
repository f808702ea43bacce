"""The `wlmap` command line: a thin shell over the library. Nothing imports this module.

Exit codes: 0 success, 1 a problem the user can fix (invalid mapping, failing test), 2 wrong usage,
3 a bug in wlmap (with a traceback to paste into a report), 130 interrupted.
Run-time modules (HTTP server, clients, store) are imported inside the commands that need them, so
`wlmap validate` starts fast enough to be a pre-commit hook.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mapper import loader, report

app = typer.Typer(
    name="wlmap",
    help="Declarative integrations from Scope AR WorkLink webhooks to your system of record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"


def _render(problems: list[loader.Problem], fmt: Format) -> str:
    if fmt is Format.json:
        return report.as_json(problems)
    if fmt is Format.github:
        return report.github(problems)
    return report.text(problems)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Mapping files or folders of mappings.", show_default=False)],
    fmt: Annotated[Format, typer.Option("--format", help="text, json or github (workflow annotations).")] = Format.text,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
    graphql_schema: Annotated[
        Path | None, typer.Option("--graphql-schema", help="The Scope AR API schema (SDL or introspection JSON): check fields.")
    ] = None,
) -> None:
    """Check mappings and report every problem with file:line:column. Exit 1 when any is invalid."""
    api_schema = None
    if graphql_schema is not None:
        from mapper import graphql_check

        try:
            api_schema = graphql_check.load_schema(graphql_schema)
        except graphql_check.SchemaFileError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    loaded = loader.load(paths, env=dict(os.environ), graphql_schema=api_schema)
    output = _render(loaded.problems, fmt)
    if output:
        typer.echo(output)
    if fmt is Format.text:
        typer.echo(report.summary(len(loaded.files), loaded.problems), err=bool(loaded.problems))
    failed = bool(loaded.errors) or (strict and bool(loaded.problems))
    raise typer.Exit(1 if failed else 0)


@app.command("schema")
def print_schema() -> None:
    """Print the mapping JSON Schema (for editors: `# yaml-language-server: $schema=...`)."""
    from mapper import schema

    typer.echo(json.dumps(schema.schema(), indent=2, ensure_ascii=False))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.write("\nThis is a bug in wlmap. Please report it with the text above.\n")
        sys.exit(3)
