"""`wlmap events list|show`, `wlmap replay|retry|cancel`, `wlmap prune` and `wlmap send`: the operator's commands.

Replay, retry and cancel go through the store: the service carries them out with its own mappings and
environment (the shell they are typed in needs no secret of any target), and each is kept in the event's
history with the OS user who asked.
"""

from __future__ import annotations

import asyncio
import enum
import getpass
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from mapper.report.events import event_json, events_json, render_table, show_event
from mapper.service.operations import (
    PRUNE_DEFAULT,
    PRUNE_STATUSES,
    STATUSES,
    Filters,
    OpsError,
    events_page,
    first_secret,
    open_existing,
    parse_since,
    prune,
    replay,
    send,
)
from mapper.service.options import PORT, SECRETS_ENV, STORE, STORE_ENV, WEBHOOK_PATH

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


class Format(enum.StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", help="text or json.")]


def register(app: typer.Typer) -> None:
    """Add `events list|show`, `replay`, `retry`, `cancel`, `prune` and `send` to the wlmap command line."""
    app.command("replay")(replay_command)
    app.command("retry")(retry_command)
    app.command("cancel")(cancel_command)
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


def operator() -> str:
    """Who asks, for the event's history: the OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@events.command("list")
def events_list(
    status: Annotated[str | None, typer.Option("--status", help=f"One of: {', '.join(STATUSES)}.")] = None,
    mapping: Annotated[str | None, typer.Option("--mapping", help="Only this mapping's jobs.")] = None,
    resource: Annotated[str | None, typer.Option("--resource", help="Only jobs for this resource id.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Made at or after this time (ISO 8601, UTC unless it says).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Made before this time (ISO 8601).")] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Reason, summary, resource or delivery id containing this.")
    ] = None,
    older: Annotated[str | None, typer.Option("--older", metavar="CURSOR", help="The page after this one.")] = None,
    store: StoreOption = STORE,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 50,
    wide: Annotated[bool, typer.Option("--wide", help="Each event on one line, however long its reason.")] = False,
    fmt: FormatOption = Format.text,
) -> None:
    """List events, newest first: id, received, mapping, status, attempts, resource, reason (why a job waits)."""
    with plain_errors():
        filters = Filters(
            status=status,
            mapping=mapping,
            resource=resource,
            since=parse_since(since, "--since") if since else None,
            until=parse_since(until, "--until") if until else None,
            text=text,
        )
        opened = open_existing(store)
        try:
            page = events_page(opened, filters, older=older, limit=limit)
        finally:
            opened.close()
    if fmt is Format.json:
        typer.echo(events_json(page.lines, page.older))
        return
    # Wrapped to the terminal; piped (or --wide), each event stays one line for grep and cut.
    width = None if wide or not sys.stdout.isatty() else shutil.get_terminal_size().columns
    typer.echo(render_table(page.lines, width))
    if page.older and page.lines and sys.stdout.isatty():
        searched = "only the newest events were searched; " if page.searched else ""
        typer.echo(f"({searched}older ones: --older {page.older})", err=True)


@events.command("show")
def events_show(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A job (12) or a delivery (d7).")],
    store: StoreOption = STORE,
    fmt: FormatOption = Format.text,
) -> None:
    """Show one event: the webhook, its history, and every attempt's timeline (masked)."""
    from mapper.service.store import NotFound

    with plain_errors():
        opened = open_existing(store)
        try:
            typer.echo(event_json(opened, ident) if fmt is Format.json else show_event(opened, ident))
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
        str | None, typer.Option("--since", help="Jobs received at or after this time (ISO 8601); dead by default.")
    ] = None,
    mapping: Annotated[
        str | None, typer.Option("--mapping", help="Every job of this mapping (dead unless --status says).")
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", metavar="SECONDS", help="How long to wait for the outcomes (0: do not wait).")
    ] = 120.0,
    store: StoreOption = STORE,
) -> None:
    """Ask the service to run stored webhooks again with its CURRENT mappings; print each outcome before → after.

    The running service carries the replay out, with its own environment: this shell needs no secret."""
    if not ids and status is None and since is None and mapping is None:
        typer.echo("usage: wlmap replay ID... | --status dead [--since ISO] [--mapping NAME]", err=True)
        raise typer.Exit(2)
    with plain_errors():
        opened = open_existing(store)
        try:
            done = asyncio.run(
                replay(opened, ids or [], status=status, since=since, mapping=mapping, by=operator(), timeout=wait)
            )
        finally:
            opened.close()
    for line in done:
        typer.echo(str(line))
    if not done:
        typer.echo("nothing to replay")
    raise typer.Exit(1 if any(r.problem or r.after.startswith("dead") for r in done) else 0)


def retry_command(
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Jobs waiting to retry (12).", show_default=False)],
    store: StoreOption = STORE,
) -> None:
    """Run jobs that wait for their next try now, instead of at the time their schedule says."""
    _each(ids, store, "retry")


def cancel_command(
    ids: Annotated[list[str], typer.Argument(metavar="ID...", help="Jobs waiting to run (12).", show_default=False)],
    store: StoreOption = STORE,
) -> None:
    """Stop jobs that wait (pending or waiting to retry): each is parked dead, "cancelled by operator"."""
    _each(ids, store, "cancel")


def _each(ids: list[str], store: str, verb: str) -> None:
    from mapper.service import actions

    act = actions.retry_now if verb == "retry" else actions.cancel
    failed = False
    with plain_errors():
        opened = open_existing(store)
    try:
        for ident in ids:
            try:
                typer.echo(act(opened, ident, operator()))
            except OpsError as exc:
                typer.echo(f"wlmap: {exc}", err=True)
                failed = True
    finally:
        opened.close()
    raise typer.Exit(1 if failed else 0)


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
