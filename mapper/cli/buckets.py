"""`wlmap buckets list|show|close`: the open (and closed) buckets of collecting mappings."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from mapper.cli.operations import StoreOption, plain_errors
from mapper.report.buckets import render_table, show_bucket
from mapper.service.operations import OpsError, open_existing
from mapper.service.options import STORE

buckets = typer.Typer(
    help="Buckets of collecting mappings: their items, when they close, their runs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
STATUSES = ("open", "closed", "all")


def register(app: typer.Typer) -> None:
    app.add_typer(buckets, name="buckets")


@buckets.command("list")
def list_command(
    status: Annotated[str, typer.Option("--status", help="open, closed or all.")] = "open",
    mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping's buckets.")] = None,
    store: StoreOption = STORE,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
) -> None:
    """List buckets, newest first: items, when each opened and when (and why) it closes."""
    with plain_errors():
        if status not in STATUSES:
            raise OpsError(f"--status {status!r} is not one of: {', '.join(STATUSES)}")
        opened = open_existing(store)
        try:
            rows = opened.buckets(status=None if status == "all" else status, mapping=mapping, limit=limit)
        finally:
            opened.close()
    typer.echo(render_table(rows))


@buckets.command("show")
def show_command(
    bucket: Annotated[int, typer.Argument(metavar="ID", help="A bucket number.", show_default=False)],
    store: StoreOption = STORE,
) -> None:
    """Show one bucket: its items in order, when and why it closes (or closed), its run."""
    from mapper.service.store import NotFound

    with plain_errors():
        opened = open_existing(store)
        try:
            typer.echo(show_bucket(opened.bucket(bucket)))
        except NotFound as exc:
            raise OpsError(str(exc)) from None
        finally:
            opened.close()


@buckets.command("close")
def close_command(
    bucket: Annotated[int, typer.Argument(metavar="ID", help="An open bucket.", show_default=False)],
    store: StoreOption = STORE,
) -> None:
    """Close a bucket now: its run becomes a job the service runs, like any other."""
    from mapper.service.store import NotFound, StoreError

    with plain_errors():
        opened = open_existing(store)
        try:
            job = opened.close_bucket(bucket, f"closed by an operator ({getpass.getuser()}, wlmap buckets close)")
        except NotFound as exc:
            raise OpsError(str(exc)) from None
        except StoreError as exc:
            raise OpsError(str(exc)) from None
        finally:
            opened.close()
    typer.echo(f"bucket {bucket} closed; its run is job {job} (the service runs it: wlmap events show {job})")
