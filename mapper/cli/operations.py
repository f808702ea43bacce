"""`wlmap events list|show`, `wlmap replay`, `wlmap prune` and `wlmap send`: the operator's commands."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from mapper.report.events import render_table, show_event
from mapper.service.operations import (
    PRUNE_DEFAULT,
    PRUNE_STATUSES,
    STATUSES,
    OpsError,
    first_secret,
    list_events,
    open_existing,
    prune,
    replay,
    send,
)
from mapper.service.options import PORT, RUNNER, SECRETS_ENV, STORE, STORE_ENV, WEBHOOK_PATH

# The store itself is imported when a command runs: every command but validate and schema imports this module.

NO_ID = "none (an unsigned legacy webhook carries none; re-sent copies are found by the body)"

StoreOption = Annotated[
    str, typer.Option("--store", envvar=STORE_ENV, help="The store: a SQLite file or a postgresql:// URL.")
]

events = typer.Typer(
    help="Stored webhooks and the jobs they caused.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    """Add `events list|show`, `replay`, `prune` and `send` to the wlmap command line."""
    app.command("replay")(replay_command)
    app.command("prune")(prune_command)
    app.command("send")(send_command)
    app.add_typer(events, name="events")


@contextmanager
def plain_errors() -> Iterator[None]:
    """A problem the operator can fix is one line on stderr and exit 1, not a traceback."""
    from mapper.service.store import StoreError

    try:
        yield
    except (OpsError, StoreError) as exc:
        typer.echo(f"wlmap: {exc}", err=True)
        raise typer.Exit(1) from None


@events.command("list")
def events_list(
    status: Annotated[str | None, typer.Option("--status", help=f"One of: {', '.join(STATUSES)}.")] = None,
    mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping's jobs.")] = None,
    store: StoreOption = STORE,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
) -> None:
    """List events, newest first: id, received, mapping, status, attempts, resource, reason."""
    with plain_errors():
        opened = open_existing(store)
        try:
            typer.echo(render_table(list_events(opened, status=status, mapping=mapping, limit=limit)))
        finally:
            opened.close()


@events.command("show")
def events_show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A job (12) or a delivery (d7).")],
    store: StoreOption = STORE,
) -> None:
    """Show one event: the webhook, and every attempt with its (masked) trace."""
    from mapper.service.store import NotFound

    with plain_errors():
        opened = open_existing(store)
        try:
            typer.echo(show_event(opened, ident))
        except NotFound as exc:
            raise OpsError(str(exc)) from None
        finally:
            opened.close()


def replay_command(
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="ID...", help="Jobs (12) or ignored deliveries (d7).", show_default=False),
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Replay every job in this state (dead).")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="With --status: received at or after this time (ISO 8601).")
    ] = None,
    mappings: Annotated[
        list[Path] | None,
        typer.Option("--mappings", help="Take the mappings from here (default: the file each job ran from)."),
    ] = None,
    store: StoreOption = STORE,
    runner: Annotated[str, typer.Option("--runner", hidden=True)] = RUNNER,
) -> None:
    """Run stored webhooks again with the CURRENT mapping; print each outcome before → after."""
    if not ids and status is None:
        typer.echo("usage: wlmap replay ID... | --status dead [--since ISO]", err=True)
        raise typer.Exit(2)
    with plain_errors():
        opened = open_existing(store)
        try:
            done = asyncio.run(
                replay(
                    opened,
                    ids or [],
                    status=status,
                    since=since,
                    runner=runner,
                    env=dict(os.environ),
                    mappings=mappings,
                )
            )
        finally:
            opened.close()
    for line in done:
        typer.echo(str(line))
    if not done:
        typer.echo("nothing to replay")
    raise typer.Exit(1 if any(r.problem or r.after.startswith("dead") for r in done) else 0)


def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", metavar="AGE", help="Last changed this long ago: 30d, 12h, 90m, 2w.")
    ],
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help=f"Comma-separated, of: {', '.join(PRUNE_STATUSES)}, or all. "
            f"Default: {','.join(PRUNE_DEFAULT)} (dead jobs are kept unless named).",
            show_default=False,
        ),
    ] = None,
    vacuum: Annotated[
        bool,
        typer.Option("--vacuum", help="SQLite: then rewrite the whole file (once, for a store made before 0.1)."),
    ] = False,
    store: StoreOption = STORE,
) -> None:
    """Delete finished jobs and stored webhooks older than AGE, and give their space back to the disk."""
    with plain_errors():
        opened = open_existing(store)
        try:
            lines = prune(opened, older_than, status, vacuum=vacuum)
        finally:
            opened.close()
    for line in lines:
        typer.echo(line)


def send_command(
    file: Annotated[Path, typer.Argument(help="The webhook body (JSON) to send.", show_default=False)],
    url: Annotated[str, typer.Option("--url", help=f"The listener, e.g. http://127.0.0.1:{PORT}{WEBHOOK_PATH}.")],
    secret: Annotated[str | None, typer.Option("--secret", help=f"Signing secret (default: ${SECRETS_ENV}).")] = None,
    headers: Annotated[Path | None, typer.Option("--headers", help="A JSON object of headers to send.")] = None,
    delivery_id: Annotated[
        str | None,
        typer.Option(
            "--delivery-id",
            help="X-Scope-Webhook-Id (default: the headers file's, else a new one; none when unsigned).",
        ),
    ] = None,
    unsigned: Annotated[bool, typer.Option("--unsigned", help="Send no signature (a legacy webhook).")] = False,
) -> None:
    """POST a correctly signed test webhook and print the answer."""
    key = None if unsigned else (secret or first_secret(os.environ))
    if key is None and not unsigned:
        typer.echo(f"wlmap: no secret: pass --secret, set {SECRETS_ENV}, or use --unsigned", err=True)
        raise typer.Exit(1)
    with plain_errors():
        status, text, used = send(file, url, key, headers_file=headers, delivery_id=delivery_id)
    typer.echo(f"X-Scope-Webhook-Id: {used or NO_ID}")
    typer.echo(f"{status} {text}")
    raise typer.Exit(0 if 200 <= status < 300 else 1)
