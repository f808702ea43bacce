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


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        typer.echo(f"{path}: cannot read the {what}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    except json.JSONDecodeError as exc:
        typer.echo(f"{path}:{exc.lineno}:{exc.colno}: the {what} is not valid JSON: {exc.msg}", err=True)
        raise typer.Exit(1) from None


def _exit_on_problems(problems: list[loader.Problem]) -> None:
    if any(p.severity == "error" for p in problems):
        typer.echo(report.text(p for p in problems if p.severity == "error"), err=True)
        raise typer.Exit(1)


@app.command()
def run(
    paths: Annotated[list[Path] | None, typer.Argument(help="A mapping file (or, with --serve, mapping folders).", show_default=False)] = None,
    event: Annotated[Path | None, typer.Option("--event", help="A saved webhook body (JSON).")] = None,
    headers: Annotated[Path | None, typer.Option("--headers", help="The webhook's headers (JSON object).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Send nothing: answer from saved responses.")] = False,
    graphql_response: Annotated[Path | None, typer.Option("--graphql-response", help="Saved GraphQL response (dry run).")] = None,
    response: Annotated[list[str] | None, typer.Option("--response", help="STEP=FILE: a stub response for a step (dry run); "
                                                       "FILE is a body, or {status, headers, body}.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text,
    serve: Annotated[bool, typer.Option("--serve", help="Run the webhook listener and workers (the main job).")] = False,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    store: Annotated[str, typer.Option("--store", envvar="WLMAP_STORE", help="SQLite file (or PostgreSQL URL).")] = "wlmap.db",
    workers: Annotated[int, typer.Option("--workers", help="Jobs run at the same time.")] = 8,
    allow_unsigned: Annotated[bool, typer.Option("--allow-unsigned", help="Accept legacy webhooks without a signature.")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json.")] = "text",
) -> None:
    """Run a mapping once for one saved event (add --dry-run to send nothing), or with --serve run the listener."""
    if serve:
        from mapper import service

        raise typer.Exit(service.run_from_cli(paths or [Path("mappings")], host=host, port=port, store=store, workers=workers,
                                              allow_unsigned=allow_unsigned, log_format=log_format))
    if not paths or len(paths) != 1 or event is None:
        typer.echo("usage: wlmap run MAPPING.yaml --event EVENT.json [--headers H.json] [--dry-run ...]", err=True)
        raise typer.Exit(2)
    raise typer.Exit(_run_once(paths[0], event, headers, dry_run, graphql_response, response or [], fmt))


def _run_once(mapping: Path, event_file: Path, headers_file: Path | None, dry_run: bool, graphql_response: Path | None,
              responses: list[str], fmt: Format) -> int:
    import asyncio

    from mapper import events, matching, stubs, trace_report
    from mapper.runner import Runner

    plan, problems = loader.load_file(mapping)
    _exit_on_problems(problems)
    assert plan is not None
    try:
        body = event_file.read_bytes()
    except OSError as exc:
        typer.echo(f"{event_file}: cannot read the event: {exc.strerror}", err=True)
        return 2
    raw_headers = _read_json(headers_file, "headers") if headers_file else {}
    if not isinstance(raw_headers, dict):
        typer.echo(f"{headers_file}: the headers file must hold a JSON object", err=True)
        return 1
    event = events.normalise(body, {str(k): str(v) for k, v in raw_headers.items()})
    matched, why = matching.match(plan, event)
    if not matched:
        if fmt is Format.json:
            typer.echo(json.dumps({"mapping": plan.name, "matched": False, "reason": why, "event": event.as_dict()}, indent=2))
        else:
            typer.echo(f"mapping  {plan.name}: not triggered — {why}")
        return 0
    transport = None
    if dry_run:
        step_stubs: dict[str, list[stubs.StubResponse]] = {}
        for spec in responses:
            step, sep, file = spec.partition("=")
            if not sep:
                typer.echo(f"--response {spec}: write STEP=FILE", err=True)
                return 2
            given = _read_json(Path(file), f"response for step `{step}`")
            if isinstance(given, dict) and set(given) <= {"status", "headers", "body"} and "status" in given:
                answer = stubs.StubResponse(int(given["status"]), {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()},
                                            given.get("body"))
            else:
                answer = stubs.StubResponse(200, {}, given)
            step_stubs.setdefault(step, []).append(answer)
        graphql = _read_json(graphql_response, "GraphQL response") if graphql_response else None
        transport = stubs.StubTransport(graphql, step_stubs)
    env = dict(os.environ)
    if dry_run:  # unset variables get a visible stand-in, so a dry run works on a laptop without secrets
        env.update({name: f"<{name}>" for name in plan.env_names if name not in env})
        env.update({name: f"https://{name.lower()}.example" for name in plan.env_names if name.endswith("_URL") and env[name].startswith("<")})

    async def once() -> object:
        runner = Runner(env, transport=transport)
        try:
            return await runner.run(plan, event, attempt=1)
        finally:
            await runner.aclose()

    result = asyncio.run(once())
    from mapper.outcome import RunResult

    assert isinstance(result, RunResult)
    if fmt is Format.json:
        typer.echo(json.dumps(result.trace, indent=2, ensure_ascii=False))
    else:
        typer.echo(trace_report.trace_text(result.trace, dry_run=dry_run))
        if transport is not None and transport.unstubbed:
            typer.echo(f"note     no stub response for: {', '.join(transport.unstubbed)} (answered 200 {{}})")
    return 0 if result.status in ("done", "skipped") else 1


@app.command()
def test(
    paths: Annotated[list[Path], typer.Argument(help="Mapping files or folders; each mapping's cases are in <name>.tests.yaml.",
                                                show_default=False)],
    strict: Annotated[bool, typer.Option("--strict", help="Fail when a mapping has no tests file.")] = False,
) -> None:
    """Run mappings' test cases against stubbed systems (nothing is sent). Exit 1 on any failure."""
    from mapper import testing
    from mapper.errors import MappingError

    files, problems = loader.mapping_files(paths)
    _exit_on_problems(problems)
    failed = passed = 0
    for file in files:
        plan, found = loader.load_file(file)
        if plan is None:
            typer.echo(report.text(p for p in found if p.severity == "error"))
            failed += 1
            continue
        tests_file = testing.tests_file_for(file)
        if not tests_file.exists():
            typer.echo(report.text([testing.problem_for_missing_tests(file)]))
            failed += strict
            continue
        try:
            suite = testing.run_suite(plan, tests_file)
        except MappingError as exc:
            typer.echo(report.text(exc.problems))
            failed += 1
            continue
        typer.echo(f"{file} ({tests_file.name})")
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
