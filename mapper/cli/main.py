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
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mapper.cli import service
from mapper.errors import Problem
from mapper.language import loader
from mapper.report import problems as report
from mapper.service import options as defaults

app = typer.Typer(
    name="wlmap",
    help="Declarative integrations from Scope AR WorkLink webhooks to your system of record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(enum.StrEnum):
    text = "text"
    json = "json"
    github = "github"


class RunFormat(enum.StrEnum):
    """`wlmap run` prints a trace: as text or JSON (workflow annotations are for `validate`)."""

    text = "text"
    json = "json"


def _render(problems: list[Problem], fmt: Format) -> str:
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
        list[str] | None,
        typer.Option(
            "--graphql-schema",
            help="FILE: the Scope AR API's schema, for `query:`; NAME=FILE: the schema of connection NAME's GraphQL "
            "API (for `query:` or GraphQL steps on it). SDL or introspection JSON (`wlmap graphql-schema`). "
            "Repeat for several.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check mappings and report every problem with file:line:column. Exit 1 when any is invalid."""
    scope_schema, by_connection = _graphql_schemas(graphql_schema or [])
    loaded = loader.load(paths, env=dict(os.environ), graphql_schema=scope_schema, graphql_schemas=by_connection)
    output = _render(loaded.problems, fmt)
    if output:
        typer.echo(output)
    if fmt is Format.text:
        typer.echo(report.summary(len(loaded.files), loaded.problems), err=bool(loaded.problems))
    failed = bool(loaded.errors) or (strict and bool(loaded.problems))
    raise typer.Exit(1 if failed else 0)


def _graphql_schemas(given: list[str]) -> tuple[Any, dict[str, Any]]:
    """`--graphql-schema FILE` (the Scope AR API's) and `--graphql-schema NAME=FILE` (a connection's), read."""
    if not given:
        return None, {}
    from mapper.language.graphql import check as graphql_check

    scope_schema, by_connection = None, {}
    for value in given:
        name, sep, file = value.partition("=")
        named = bool(sep) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) is not None and bool(file)
        try:
            loaded = graphql_check.load_schema(Path(file if named else value))
        except graphql_check.SchemaFileError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        if named:
            by_connection[name] = loaded
        else:
            scope_schema = loaded
    return scope_schema, by_connection


@app.command("schema")
def print_schema(
    tests: Annotated[
        bool, typer.Option("--tests", help="The JSON Schema of tests files (<mapping>.tests.yaml) instead.")
    ] = False,
) -> None:
    """Print the mapping JSON Schema (for editors: `# yaml-language-server: $schema=...`)."""
    if tests:
        from importlib.resources import files

        typer.echo(files("mapper.rehearse").joinpath("tests.schema.json").read_text(encoding="utf-8"), nl=False)
        return
    from mapper.language import schema

    typer.echo(json.dumps(schema.schema(), indent=2, ensure_ascii=False))


def exit_on_problems(problems: list[Problem]) -> None:
    if any(p.severity == "error" for p in problems):
        typer.echo(report.text(p for p in problems if p.severity == "error"), err=True)
        raise typer.Exit(1)


def run(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="A mapping file (or, with --serve, mapping folders).", show_default=False),
    ] = None,
    event: Annotated[Path | None, typer.Option("--event", help="A saved webhook body (JSON).")] = None,
    headers: Annotated[Path | None, typer.Option("--headers", help="The webhook's headers (JSON object).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Send nothing: answer from saved responses.")] = False,
    graphql_response: Annotated[
        Path | None, typer.Option("--graphql-response", help="Saved GraphQL response (dry run).")
    ] = None,
    response: Annotated[
        list[str] | None,
        typer.Option(
            "--response",
            help="STEP=FILE: a stub response for a step (dry run); FILE is a body, or {status, headers, body}.",
        ),
    ] = None,
    case: Annotated[
        str | None,
        typer.Option(
            "--case",
            help="Take event, answers and env from this test case "
            "(its name or number) in the mapping's tests file; implies --dry-run.",
        ),
    ] = None,
    fmt: Annotated[RunFormat, typer.Option("--format", help="text or json.")] = RunFormat.text,
    serve: Annotated[
        bool, typer.Option("--serve", help="Run the webhook listener and workers (the main job).")
    ] = False,
    # The service's options (mapper/cli/service.py): typer reads them from this signature, hence its length.
    mappings: service.Mappings = None,
    store: service.Store = defaults.STORE,
    host: service.Host = defaults.HOST,
    port: service.Port = defaults.PORT,
    workers: service.Workers = defaults.WORKERS,
    processes: service.Processes = defaults.PROCESSES,
    role: service.Role = defaults.ROLE,
    path: service.WebhookPath = defaults.WEBHOOK_PATH,
    require_secret: service.RequireSecret = defaults.REQUIRE_SECRET,
    allow_unsigned: service.AllowUnsigned = False,
    unsigned_from: service.UnsignedFrom = defaults.UNSIGNED_FROM,
    signature_header: service.SignatureHeader = defaults.SIGNATURE_HEADER,
    signature_encoding: service.SignatureEncoding = defaults.SIGNATURE_ENCODING,
    max_body: service.MaxBody = defaults.MAX_BODY,
    header_timeout: service.HeaderTimeout = defaults.HEADER_TIMEOUT,
    body_timeout: service.BodyTimeout = defaults.BODY_TIMEOUT,
    keep_alive: service.KeepAlive = defaults.KEEP_ALIVE,
    max_connections: service.MaxConnections = defaults.MAX_CONNECTIONS,
    dedupe_window: service.DedupeWindow = defaults.DEDUPE_WINDOW,
    links: service.Links = defaults.LINKS,
    links_rate: service.LinksRate = defaults.LINKS_RATE,
    ui_host: service.UiHost = defaults.UI_HOST,
    ui_port: service.UiPort = defaults.UI_PORT,
    retention_days: service.RetentionDays = defaults.RETENTION_DAYS,
    trace_body_max: service.TraceBodyMax = defaults.TRACE_BODY_MAX,
    lease: service.Lease = defaults.LEASE,
    poll: service.Poll = defaults.POLL,
    run_timeout: service.RunTimeout = defaults.RUN_TIMEOUT,
    grace: service.Grace = defaults.GRACE,
    store_max_mb: service.StoreMaxMb = defaults.STORE_MAX_MB,
    store_connections: service.StoreConnections = defaults.STORE_CONNECTIONS,
    log_format: service.LogFormat = defaults.LOG_FORMAT,
    log_level: service.LogLevel = defaults.LOG_LEVEL,
    time_scale: service.TimeScale = defaults.TIME_SCALE,
    runner: service.Runner = defaults.RUNNER,
) -> None:
    """Run a mapping once for one saved event (add --dry-run to send nothing), or with --serve run the listener."""
    if serve:
        raise typer.Exit(service.serve([*(paths or []), *(mappings or [])], ctx.params))
    if not paths or len(paths) != 1 or (event is None and case is None):
        typer.echo(
            "usage: wlmap run MAPPING.yaml --event EVENT.json [--headers H.json] [--dry-run ...]\n"
            "       wlmap run MAPPING.yaml --case NAME\n       wlmap run --serve [MAPPINGS...]",
            err=True,
        )
        raise typer.Exit(2)
    raise typer.Exit(
        _run_once(paths[0], event, headers, dry_run or case is not None, graphql_response, response or [], case, fmt)
    )


def _run_once(
    mapping: Path,
    event_file: Path | None,
    headers_file: Path | None,
    dry_run: bool,
    graphql_response: Path | None,
    responses: list[str],
    case: str | None,
    fmt: RunFormat,
) -> int:
    from mapper.errors import MappingError
    from mapper.rehearse import inputs as given
    from mapper.rehearse import once
    from mapper.report import traces

    plan, problems = loader.load_file(mapping)
    exit_on_problems(problems)
    assert plan is not None
    if plan.collect is not None or plan.schedule is not None:
        return _run_batch(plan, mapping, event_file, headers_file, dry_run, graphql_response, responses, case, fmt)
    try:
        if case is not None:
            inputs = given.from_case(mapping, case, plan)
        else:
            assert event_file is not None
            inputs = given.from_files(event_file, headers_file, graphql_response, responses)
    except given.InputError as exc:
        typer.echo(str(exc), err=True)
        return 1
    except MappingError as exc:
        typer.echo(report.text(exc.problems), err=True)
        return 1
    env = {**os.environ, **inputs.env}
    outcome = once.rehearse(plan, inputs, once.stand_in_env(plan, env) if dry_run else env, dry_run=dry_run)
    if outcome.result is None:
        if fmt is RunFormat.json:
            typer.echo(
                json.dumps(
                    {"mapping": plan.name, "matched": False, "reason": outcome.why, "event": outcome.event.as_dict()},
                    indent=2,
                )
            )
        else:
            typer.echo(f"mapping  {plan.name}: not triggered — {outcome.why}")
            typer.echo("\n".join(traces.event_text(outcome.event.as_dict(), fields=True)))
        return 0
    if fmt is RunFormat.json:
        typer.echo(json.dumps(outcome.result.trace, indent=2, ensure_ascii=False))
    else:
        typer.echo(traces.trace_text(outcome.result.trace, dry_run=dry_run))
        if outcome.unstubbed:
            typer.echo(
                f"note     no stub response for: {', '.join(outcome.unstubbed)} (answered 200 {{}}, a stand-in: "
                "a step that expects another status, or a GraphQL answer, fails on it)"
            )
    return 0 if outcome.result.status in ("done", "skipped") else 1


def _run_batch(
    plan: Any,
    mapping: Path,
    event_file: Path | None,
    headers_file: Path | None,
    dry_run: bool,
    graphql_response: Path | None,
    responses: list[str],
    case: str | None,
    fmt: RunFormat,
) -> int:
    """`wlmap run` of a collecting mapping (its event collected, its bucket closed and run) or a scheduled one
    (its run for a case's `at`): always a dry run, answered from the saved responses."""
    from mapper.errors import MappingError
    from mapper.rehearse import inputs as given
    from mapper.rehearse import once
    from mapper.report import traces

    kind = "collecting" if plan.collect is not None else "scheduled"
    if not dry_run or (plan.schedule is not None and case is None):
        how = "--case NAME (a case with `at:`)" if plan.schedule is not None else "--dry-run or --case NAME"
        typer.echo(f"wlmap: {plan.name} is a {kind} mapping: `wlmap run` rehearses it with stubs; use {how}", err=True)
        return 2
    try:
        if case is not None:
            chosen = given.case_named(mapping, case, plan)
        else:
            assert event_file is not None
            chosen = given.as_case(given.from_files(event_file, headers_file, graphql_response, responses), event_file)
    except given.InputError as exc:
        typer.echo(str(exc), err=True)
        return 1
    except MappingError as exc:
        typer.echo(report.text(exc.problems), err=True)
        return 1
    results = once.rehearse_batch(plan, chosen, once.stand_in_env(plan, {**os.environ, **chosen.env}))
    if fmt is RunFormat.json:
        typer.echo(json.dumps([result.trace for result in results], indent=2, ensure_ascii=False))
    else:
        typer.echo("\n\n".join(traces.trace_text(result.trace, dry_run=True) for result in results) or "nothing ran")
    return 0 if results and all(r.status in ("done", "skipped") for r in results) else 1


def test(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Mapping files or folders; each mapping's cases are in <name>.tests.yaml.", show_default=False
        ),
    ],
    strict: Annotated[bool, typer.Option("--strict", help="Fail when a mapping has no tests file.")] = False,
) -> None:
    """Run mappings' test cases against stubbed systems (nothing is sent). Exit 1 on any failure."""
    from mapper.errors import MappingError
    from mapper.rehearse import cases, tests_file

    files, problems = loader.mapping_files(paths)
    exit_on_problems(problems)
    failed = passed = 0
    for file in files:
        plan, found = loader.load_file(file)
        if plan is None:
            typer.echo(report.text(p for p in found if p.severity == "error"))
            failed += 1
            continue
        cases_file = tests_file.tests_file_for(file)
        if not cases_file.exists():
            typer.echo(report.text([tests_file.problem_for_missing_tests(file)]))
            failed += strict
            continue
        try:
            suite = cases.run_suite(plan, cases_file)
        except MappingError as exc:
            typer.echo(report.text(exc.problems))
            failed += 1
            continue
        typer.echo(f"{file} ({cases_file.name})")
        for result in suite.results:
            mark = "ok  " if result.passed else "FAIL"
            typer.echo(f"  {mark} {result.case.name}")
            for failure in result.failures:
                typer.echo("       " + failure.replace("\n", "\n       "))
            if result.failures and result.result is not None:
                typer.echo(f"       ({result.case.location}; outcome {result.result.status}: {result.result.reason})")
            passed += result.passed
            failed += not result.passed
        for gap in suite.uncovered:
            typer.echo(f"  not covered: {gap}")
    typer.echo(f"{passed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)


# `wlmap validate` runs as a pre-commit hook, so its start-up is budgeted (bench/startup.py): typer builds
# every registered command on each run, so the other commands are added only when one of them may be wanted.
FAST_COMMANDS = frozenset({"validate", "schema"})


def register_all() -> None:
    from mapper.cli import buckets, graphql_schema, operations  # typer commands only; the rest when one runs
    from mapper.cli.demo import demo_command
    from mapper.cli.link import link_command
    from mapper.cli.scaffold import new_command

    app.command()(run)
    app.command()(test)
    app.command("link")(link_command)
    app.command("demo")(demo_command)
    app.command("new")(new_command)
    graphql_schema.register(app)
    operations.register(app)
    buckets.register(app)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in FAST_COMMANDS:
        register_all()
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
