"""`wlmap graphql-schema CONNECTION`: fetch a GraphQL API's schema by introspection, for `validate --graphql-schema`."""

from __future__ import annotations

import asyncio
import enum
import os
from pathlib import Path
from typing import Annotated

import typer

from mapper.language import loader
from mapper.report import problems as report


class SchemaFormat(enum.StrEnum):
    sdl = "sdl"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("graphql-schema")(graphql_schema)


def graphql_schema(
    connection: Annotated[
        str, typer.Argument(help="A connection with a GraphQL `url` (the Scope AR API, or a target's).")
    ],
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Mapping files or folders that define the connection (default: mappings/).", show_default=False
        ),
    ] = None,
    fmt: Annotated[
        SchemaFormat, typer.Option("--format", help="sdl (schema text) or json (the introspection result).")
    ] = SchemaFormat.sdl,
) -> None:
    """Print a GraphQL API's schema, fetched by introspection with the connection's URL and credentials.

    Save it and check mappings against it: `wlmap graphql-schema scope > scope.graphql`, then
    `wlmap validate mappings/ --graphql-schema scope.graphql` (or `--graphql-schema NAME=FILE` for a target).
    """
    from mapper.errors import MappingError
    from mapper.run.clients import ClientError
    from mapper.run.clients.graphql import fetch_schema
    from mapper.run.connections import resolve

    env = dict(os.environ)
    try:
        plans = loader.load_plans(paths or [Path("mappings")], env)
    except MappingError as exc:
        typer.echo(report.text(exc.errors), err=True)
        raise typer.Exit(1) from None
    found = [(plan, plan.connections[connection]) for plan in plans if connection in plan.connections]
    endpoints = [(plan, conn) for plan, conn in found if conn.url is not None]
    if not endpoints:
        where = ", ".join(str(p) for p in paths or [Path("mappings")])
        what = "has no GraphQL `url` (only a `base_url`)" if found else "is not defined"
        typer.echo(f"connection `{connection}` {what} in the mappings under {where}", err=True)
        raise typer.Exit(1)
    plan, chosen = endpoints[0]
    try:
        text = asyncio.run(fetch_schema(resolve(chosen, env), form=fmt.value))
    except ClientError as exc:
        typer.echo(f"connection `{connection}` ({plan.file}): {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(text)
    typer.echo(f"schema of `{connection}` (as defined in {plan.file}) fetched by introspection", err=True)
