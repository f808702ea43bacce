"""`wlmap run --serve`: the service's options as typer options, with the defaults of mapper.service.options.

Each option is named after the ServiceOptions field it sets (`--run-timeout` sets `run_timeout`), so the
command hands over what it was given by name; tests/test_service_options.py checks the two stay one list.
The environment is read here, and only here: the webhook secrets, the links token, the store (`--store` or
WLMAP_STORE), and what mappings read as `env.NAME` (the link signing key too) are passed down as values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from mapper.cli.webhook_secret import SECRET_FILE, SecretFileError, announcement, local_secret
from mapper.service import options as defaults
from mapper.service.options import ServiceOptions, links_token_from, secrets_from

SERVE = "--serve"


# One alias per option: `wlmap run` lists them in its signature (typer reads the options from there).
Mappings = Annotated[
    list[Path] | None,
    typer.Option(
        "--mappings",
        metavar="PATH",
        help="With --serve: mapping files or folders, like the PATHS (repeat for more).",
        show_default=False,
    ),
]
Store = Annotated[str, typer.Option("--store", envvar=defaults.STORE_ENV, help="A SQLite file or a postgresql:// URL.")]
Host = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every IPv4 address; :: IPv6).")]
Port = Annotated[int, typer.Option("--port", help="TCP port to listen on.")]
Workers = Annotated[
    int, typer.Option("--workers", help="Mapping runs at the same time (see docs/operations.md, Sizing).")
]
Processes = Annotated[
    int,
    typer.Option(
        "--processes",
        help="SQLite store: worker processes beside one listener process, each running --workers at a time; "
        "0: listener and workers in one process (see docs/operations.md, Sizing).",
    ),
]
Role = Annotated[
    defaults.Role,
    typer.Option(
        "--role",
        help="all (webhooks and jobs), listener (webhooks only) or worker (jobs only); "
        "split roles share a PostgreSQL store.",
    ),
]
WebhookPath = Annotated[str, typer.Option("--path", help="URL path of the webhook endpoint.")]
AllowUnsigned = Annotated[
    bool, typer.Option("--allow-unsigned", help="Accept (legacy) webhooks that carry no signature header.")
]
RequireSecret = Annotated[
    bool,
    typer.Option(
        "--require-secret",
        envvar=defaults.REQUIRE_SECRET_ENV,
        help=f"Refuse to start without {defaults.SECRETS_ENV} (production); without it, a local run makes a "
        f"secret once and keeps it in {SECRET_FILE}.",
    ),
]
UnsignedFrom = Annotated[
    str | None,
    typer.Option(
        "--unsigned-from",
        metavar="CIDR,...",
        help="With --allow-unsigned: take unsigned webhooks only from these networks (comma-separated).",
    ),
]
SignatureHeader = Annotated[str, typer.Option("--signature-header", help="The header that carries the signature.")]
SignatureEncoding = Annotated[
    defaults.SignatureEncoding,
    typer.Option(
        "--signature-encoding",
        help="How the HMAC-SHA256 of the body is written.",
    ),
]
MaxBody = Annotated[int, typer.Option("--max-body", help="Largest webhook body in bytes (413 above it).")]
HeaderTimeout = Annotated[
    float, typer.Option("--header-timeout", help="Seconds a request's line and headers may take to arrive (408).")
]
BodyTimeout = Annotated[
    float, typer.Option("--body-timeout", help="Seconds a webhook's body may take to arrive after its headers (408).")
]
KeepAlive = Annotated[int, typer.Option("--keep-alive", help="Seconds an idle keep-alive connection is kept.")]
MaxConnections = Annotated[
    int, typer.Option("--max-connections", help="Open connections at most; past it the longest idle one is closed.")
]
DedupeWindow = Annotated[
    float,
    typer.Option("--dedupe-window", help="Seconds in which an identical body without a delivery id is a duplicate."),
]
Links = Annotated[
    bool,
    typer.Option(
        "--links",
        help=f"Also serve GET {defaults.LINKS_PATH}/<mapping> (deep links and QR codes); "
        f"needs {defaults.LINKS_TOKEN_ENV}.",
    ),
]
LinksRate = Annotated[
    float, typer.Option("--links-rate", help=f"Requests a second {defaults.LINKS_PATH}/ answers, all callers together.")
]
UiHost = Annotated[
    str | None,
    typer.Option("--ui-host", help="With --ui-port: the console's address (default: --host)."),
]
UiPort = Annotated[
    int | None,
    typer.Option(
        "--ui-port",
        help=f"Serve the console on this port of its own instead of beside the webhooks; needs "
        f"{defaults.UI_PASSWORD_ENV} (and {defaults.UI_USER_ENV}) or {defaults.UI_TOKEN_ENV}.",
    ),
]
RetentionDays = Annotated[
    float,
    typer.Option(
        "--retention-days",
        help="Keep finished jobs and their webhooks this long; dead ones stay until replayed or pruned.",
    ),
]
TraceBodyMax = Annotated[
    int,
    typer.Option(
        "--trace-body-max", metavar="BYTES", help="Bytes of each request or response body a stored trace keeps."
    ),
]
Lease = Annotated[float, typer.Option("--lease", help="Seconds a claim lasts without a heartbeat.")]
Poll = Annotated[float, typer.Option("--poll", help="Seconds between looks for retries that became due.")]
RunTimeout = Annotated[float, typer.Option("--run-timeout", help="Longest a single run may take, in seconds.")]
Grace = Annotated[float, typer.Option("--grace", help="Seconds running jobs get to finish on SIGTERM.")]
StoreMaxMb = Annotated[
    float | None,
    typer.Option("--store-max-mb", help="Refuse webhooks (503) rather than let the store grow past this size."),
]
StoreConnections = Annotated[
    int | None,
    typer.Option(
        "--store-connections", metavar="N", help="PostgreSQL: connections this process opens at most (default 10)."
    ),
]
LogFormat = Annotated[
    defaults.LogFormat,
    typer.Option(
        "--log-format",
        help="Log lines as text or JSON.",
    ),
]
LogLevel = Annotated[defaults.LogLevel, typer.Option("--log-level")]
TimeScale = Annotated[float, typer.Option("--time-scale", hidden=True)]  # tests: retry delays divided by this
Runner = Annotated[str, typer.Option("--runner", hidden=True)]  # tests: a stand-in runner, module:factory

_GIVEN = frozenset(field.name for field in dataclasses.fields(ServiceOptions)) - {
    "mappings",
    "secrets",
    "links_token",
    "env",
}


def serve(paths: list[Path], given: Mapping[str, Any]) -> int:
    """Start the service with the options `wlmap run` was given (by name); the exit code."""
    if not paths:
        if not Path(defaults.MAPPINGS).exists():
            typer.echo(
                f"wlmap: nothing to serve: there is no `{defaults.MAPPINGS}` folder here; name the mapping files "
                f"or folders: wlmap run {SERVE} PATH... (or --mappings PATH)",
                err=True,
            )
            return 2
        paths = [Path(defaults.MAPPINGS)]
    environment = dict(os.environ)
    options = ServiceOptions(
        mappings=tuple(paths),
        secrets=secrets_from(environment),
        links_token=links_token_from(environment),
        env=environment,
        **{name: value for name, value in given.items() if name in _GIVEN},
    )
    if not (options.secrets or options.require_secret or options.allow_unsigned) and options.takes_webhooks:
        try:
            made = local_secret()
        except SecretFileError as exc:
            typer.echo(f"wlmap: {exc}", err=True)
            return 1
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(options.host, options.host)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        typer.echo(announcement(made, f"http://{host}:{options.port}{options.path}"), err=True)
        options = dataclasses.replace(options, secrets=(made.value,))
    from mapper.service import server  # uvicorn, starlette, the store: only when the service starts

    return server.serve(options, console=_console(environment))


def _console(environment: Mapping[str, str]) -> Any:
    """The console's credential (from the environment, read here only) and its dry run (mapper.rehearse: the
    service cannot import it, so it is handed over from here)."""
    from mapper.rehearse import once
    from mapper.rehearse.stubs import StubTransport
    from mapper.service.console.app import DryRunResult, Given
    from mapper.service.console.auth import Credentials

    async def dry_run(plan: Any, body: bytes, headers: Mapping[str, str]) -> DryRunResult:
        stubs = StubTransport(None, {})
        done = await once.run_once(plan, body, headers, once.stand_in_env(plan, environment), stubs=stubs)
        trace = done.result.trace if done.result is not None else None
        return DryRunResult(done.matched, done.why, trace, tuple(done.unstubbed))

    credentials = Credentials(
        environment.get(defaults.UI_USER_ENV, "").strip(),
        environment.get(defaults.UI_PASSWORD_ENV, ""),
        environment.get(defaults.UI_TOKEN_ENV, "").strip(),
    )
    return Given(credentials, dry_run)
