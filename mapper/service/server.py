"""The running service: the listener and the worker pool on one event loop, mappings reloaded on change.

    python -m mapper.service.server --mappings mappings/ --store wlmap.db --port 8000 --workers 4

With a PostgreSQL store (`--store postgresql://...`) any number of processes share one queue, and `--role`
splits them: `listener` takes webhooks and runs nothing, `worker` runs jobs and takes no webhooks (it still
answers /healthz, /readyz and /metrics), `all` (the default) does both.

Exit codes: 0 stopped by SIGTERM, 130 by Ctrl-C, 1 a problem the user can fix (invalid mappings, no secret,
store or port unusable), 2 wrong usage, 3 a bug in wlmap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol, cast

from mapper.errors import MappingError, as_text
from mapper.events import Event
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.matching import match, truthy  # noqa: F401 (truthy: re-exported)
from mapper.service.store import NewJob, Store, StoreError, run_blocking
from mapper.service.worker import RunFunction

DEFAULT_WORKERS: Final = 16  # mapping runs at the same time; `wlmap run --serve --workers` says the same
log = logging.getLogger("wlmap.service")

DEFAULT_RUNNER: Final = "mapper.run.runner:Runner"
SECRETS_ENV: Final = "WLMAP_WEBHOOK_SECRETS"
STORE_ENV: Final = "WLMAP_STORE"
ROLES: Final = ("all", "listener", "worker")
WEEK: Final = 7 * 24 * 3600.0
PRUNE_EVERY: Final = 3600.0


class ServiceError(Exception):
    """The service cannot start; the message says why in plain words."""


# ------------------------------------------------------------------------------------------ matching


def matches(plan: Plan, event: Event) -> bool:
    """Whether the plan's trigger wants the event (see `matching.match`); a `when` that fails is logged."""
    matched, why = match(plan, event)
    if not matched and why.startswith("trigger `when` could not"):
        log.warning("%s", why, extra={"event_id": event.delivery_id, "mapping": plan.name})
    return matched


class Mappings:
    """The mappings in force; swapped whole when the files change and the new set is valid."""

    def __init__(self, paths: Sequence[Path], env: Mapping[str, str]) -> None:
        self.paths, self.env = list(paths), env
        self._plans: dict[str, Plan] = {}
        self._stamp: tuple[tuple[str, int, int], ...] | None = None

    def current(self) -> Mapping[str, Plan]:
        return self._plans

    def route(self, event: Event) -> list[NewJob]:
        """A job for every mapping whose trigger matches the event."""
        return [
            NewJob(plan.name, event.resource_id, plan.file) for plan in self._plans.values() if matches(plan, event)
        ]

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        files, _ = loader.mapping_files(self.paths)
        stamp = []
        for file in files:
            with contextlib.suppress(OSError):
                info = file.stat()
                stamp.append((str(file), info.st_mtime_ns, info.st_size))
        return tuple(sorted(stamp))

    def load(self) -> None:
        """Load every mapping, or raise MappingError with every problem (at start-up)."""
        stamp = self._files_stamp()
        loaded = loader.load(self.paths, self.env)
        if loaded.errors:
            raise MappingError(loaded.problems)
        for problem in loaded.problems:
            log.warning("%s", as_text([problem]))
        self._plans = {plan.name: plan for plan in loaded.plans}
        self._stamp = stamp

    def reload_if_changed(self) -> bool:
        """Reload when a file changed; an invalid new version is reported and the previous set stays."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        loaded = loader.load(self.paths, self.env)
        if loaded.errors:
            log.error(
                "mappings changed but are not valid; the previous version keeps running:\n%s",
                as_text(loaded.problems),
            )
            return False
        self._plans = {plan.name: plan for plan in loaded.plans}
        log.info("mappings reloaded: %s", ", ".join(sorted(self._plans)) or "none")
        return True


# --------------------------------------------------------------------------------------------- runner


class Runner(Protocol):
    """What `--runner module:factory` must build from the environment (mapper.run.runner.Runner does)."""

    run: RunFunction

    def aclose(self) -> Awaitable[None]: ...


def load_runner(spec: str, env: Mapping[str, str]) -> Runner:
    """Build the runner named `module:factory`; ServiceError when it cannot be imported or built."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServiceError(f"cannot load the runner `{spec}`: {exc}") from None
    factory = getattr(module, attribute or "Runner", None)
    if not callable(factory):
        raise ServiceError(f"cannot load the runner `{spec}`: {module_name} has no `{attribute or 'Runner'}`")
    return cast(Runner, factory(env))


# -------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ServiceOptions:
    """Everything `serve` takes besides where to listen, the store and the pool size."""

    path: str = "/webhooks"
    secrets: tuple[str, ...] | None = None  # None: from WLMAP_WEBHOOK_SECRETS, comma-separated
    signature_header: str = "x-scope-hmac-sha256"
    signature_encoding: str = "base64"
    allow_unsigned: bool = False
    max_body: int = 1024 * 1024
    dedupe_window: float = 300.0
    retention: float = WEEK
    lease: float = 60.0
    poll: float = 0.5
    run_timeout: float = 600.0
    grace: float = 10.0
    time_scale: float = 1.0
    reload_interval: float = 1.0
    runner: str = DEFAULT_RUNNER
    log_format: str = "text"
    log_level: str = "INFO"
    store_max_bytes: int | None = None
    role: str = "all"  # all | listener (webhooks only) | worker (jobs only)
    store_connections: int | None = None  # PostgreSQL: connections per process (None: the store's default)
    env: Mapping[str, str] | None = field(default=None, repr=False)  # None: the process environment


def secrets_from(env: Mapping[str, str]) -> tuple[str, ...]:
    """The webhook secrets in WLMAP_WEBHOOK_SECRETS (comma-separated: old and new during a rotation)."""
    return tuple(part.strip() for part in env.get(SECRETS_ENV, "").split(",") if part.strip())


# -------------------------------------------------------------------------------------------- serving


class _Server:
    """uvicorn's server, with our SIGTERM/SIGINT handling: stop gracefully and report which signal."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                # uvicorn re-raises the signal after shutdown, which would kill us before we clean up.
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = (signal.SIGINT, signal.SIGTERM)
                originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
                try:
                    yield
                finally:
                    for sig, handler in originals.items():
                        signal.signal(sig, handler)

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                outer.signal = sig
                super().handle_exit(sig, frame)

        self.signal: int | None = None
        self.server = Server(config)

    def stop(self) -> None:
        self.server.should_exit = True

    async def serve(self, sock: socket.socket) -> None:
        await self.server.serve(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # create_server leaves the socket's proto 0, and asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP (base_events._set_nodelay): without this, Nagle holds every answer's body until the client's
    # delayed ACK, ~40 ms per webhook on a keep-alive connection. Accepted connections inherit the option.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def _upkeep(
    mappings: Mappings,
    store: Store,
    options: ServiceOptions,
    executor: ThreadPoolExecutor,
    on_reload: Callable[[], None],
) -> None:
    """Every second or so: reload changed mappings; every hour: prune what is older than the retention."""
    next_prune = 0.0
    while True:
        try:
            if await run_blocking(executor, mappings.reload_if_changed):
                on_reload()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                pruned = await run_blocking(executor, lambda: store.prune(store.clock() - options.retention))
                if pruned:
                    log.info("pruned %d deliveries older than %g days", pruned, options.retention / 86400)
        except StoreError as exc:
            log.error("upkeep: %s", exc)
        except Exception:
            log.exception("upkeep failed; it will try again")
        await asyncio.sleep(options.reload_interval)


def serve(
    paths: Sequence[Path],
    host: str = "127.0.0.1",
    port: int = 8000,
    store: str | Path = "wlmap.db",
    workers: int = DEFAULT_WORKERS,
    options: ServiceOptions | None = None,
) -> int:
    """Run the listener and the workers until SIGTERM or Ctrl-C; returns the exit code."""
    options = options or ServiceOptions()
    configure_logging(options.log_format, options.log_level)
    try:
        return asyncio.run(_serve(list(paths), host, port, str(store), workers, options))
    except MappingError as exc:
        sys.stderr.write(as_text(exc.problems) + "\nwlmap: the mappings are not valid; nothing started\n")
    except (ServiceError, StoreError) as exc:
        sys.stderr.write(f"wlmap: {exc}\n")
    return 1


def run_from_cli(
    paths: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    store: str | Path = "wlmap.db",
    workers: int = DEFAULT_WORKERS,
    allow_unsigned: bool = False,
    log_format: str = "text",
    role: str = "all",
) -> int:
    """`wlmap run --serve`: serve() with the options that command takes."""
    return serve(
        paths,
        host,
        port,
        store,
        workers,
        ServiceOptions(allow_unsigned=allow_unsigned, log_format=log_format, role=role),
    )


async def _serve(
    paths: list[Path], host: str, port: int, store_path: str, workers: int, options: ServiceOptions
) -> int:
    import uvicorn

    from mapper.service.listener import ListenerOptions, create_app
    from mapper.service.metrics import Metrics
    from mapper.service.signature import SignatureScheme
    from mapper.service.store import describe, open_store
    from mapper.service.worker import Worker, WorkerOptions

    if options.role not in ROLES:
        raise ServiceError(f"--role must be one of {', '.join(ROLES)}, not {options.role!r}")
    takes_webhooks, runs_jobs = options.role in ("all", "listener"), options.role in ("all", "worker")
    env = dict(os.environ) if options.env is None else dict(options.env)
    secrets = options.secrets if options.secrets is not None else secrets_from(env)
    if takes_webhooks and not secrets and not options.allow_unsigned:
        raise ServiceError(
            f"no webhook secret: set {SECRETS_ENV} (comma-separated during a rotation), "
            "or pass --allow-unsigned to accept legacy webhooks that carry no signature"
        )
    try:
        scheme = SignatureScheme(header=options.signature_header, encoding=options.signature_encoding)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    if options.allow_unsigned and takes_webhooks:
        log.warning(
            "--allow-unsigned: webhooks WITHOUT a %s header are accepted unverified; a present but "
            "wrong signature is still refused",
            scheme.header,
        )
    mappings = Mappings(paths, env)
    mappings.load()
    async with contextlib.AsyncExitStack() as resources:  # closed in reverse, whatever happens
        runner = load_runner(options.runner, env)
        resources.push_async_callback(_quietly, runner.aclose)
        sock = _bind(host, port)
        resources.callback(sock.close)
        store = open_store(store_path, max_bytes=options.store_max_bytes, connections=options.store_connections)
        resources.push_async_callback(asyncio.to_thread, store.close)
        executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="wlmap-io")
        resources.callback(executor.shutdown, wait=False)
        metrics = Metrics()
        metrics.mappings.set(len(mappings.current()))
        worker = Worker(
            store,
            mappings.current,
            runner.run,
            WorkerOptions(
                concurrency=workers,
                lease=options.lease,
                poll=options.poll,
                run_timeout=options.run_timeout,
                grace=options.grace,
                time_scale=options.time_scale,
            ),
            metrics=metrics,
            executor=executor,
        )

        def readiness() -> str | None:
            if not mappings.current():
                return "no mappings loaded"
            try:
                store.ping()
            except StoreError as exc:
                return f"store not writable: {exc}"
            return None

        listening = ListenerOptions(
            path=options.path,
            secrets=secrets,
            scheme=scheme,
            allow_unsigned=options.allow_unsigned,
            max_body=options.max_body,
            dedupe_window=options.dedupe_window,
        )
        app = create_app(
            store,
            mappings.route,
            listening,
            metrics=metrics,
            executor=executor,
            on_stored=worker.wake if runs_jobs else lambda: None,
            readiness=readiness,
        )
        if not takes_webhooks:  # a worker keeps /healthz, /readyz and /metrics; the webhook path is a 404
            app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != options.path]
        server = _Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                http="h11",
                server_header=False,
                timeout_graceful_shutdown=max(1, int(options.grace)),
            )
        )
        failed: list[BaseException] = []

        def on_worker_end(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                failed.append(cast(BaseException, task.exception()))
                log.critical("the worker pool stopped unexpectedly", exc_info=task.exception())
                server.stop()

        work = asyncio.create_task(worker.serve() if runs_jobs else asyncio.sleep(0), name="wlmap-workers")
        work.add_done_callback(on_worker_end)
        upkeep = asyncio.create_task(
            _upkeep(mappings, store, options, executor, lambda: metrics.mappings.set(len(mappings.current())))
        )
        resources.push_async_callback(_cancel, upkeep)
        names = ", ".join(sorted(mappings.current())) or "none"
        doing = {
            "all": f"{options.path} with {workers} worker(s)",
            "listener": f"{options.path} (listener only)",
            "worker": f" (health and metrics only) with {workers} worker(s)",
        }[options.role]
        log.info(
            "listening on http://%s:%d%s; mappings: %s; store: %s",
            host,
            sock.getsockname()[1],
            doing,
            names,
            describe(store_path),
        )
        await server.serve(sock)
        log.info("stopped taking webhooks; finishing or releasing running jobs")
        worker.stop()
        await _quietly(lambda: work)
    log.info("stopped")
    if failed:
        return 3
    return 130 if server.signal == signal.SIGINT else 0


async def _quietly(step: Callable[[], Awaitable[Any]]) -> None:
    """Await a clean-up step; a failure in it is logged, not raised (the others must still run)."""
    try:
        await step()
    except Exception:
        log.exception("clean-up step failed")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -------------------------------------------------------------------------------------------- logging

_EXTRAS: Final = ("event_id", "mapping", "step", "job", "delivery")


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in _EXTRAS if getattr(record, key, None) is not None)
        return f"{text} [{context}]" if context else text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in _EXTRAS if getattr(record, key, None) is not None})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Log lines to stderr as text or JSON; libraries that log full URLs (tokens!) only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("httpx", "httpcore", "gql", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ------------------------------------------------------------------------------------------ command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mapper.service.server", description="Take WorkLink webhooks and run the mappings they trigger."
    )
    p.add_argument("--mappings", nargs="+", type=Path, required=True, metavar="PATH", help="mapping files or folders")
    p.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV, "wlmap.db"),
        help=f"a SQLite file or a postgresql:// URL (default: ${STORE_ENV} or wlmap.db)",
    )
    p.add_argument(
        "--role",
        default="all",
        choices=ROLES,
        help="all: webhooks and jobs; listener: webhooks only; worker: jobs only (PostgreSQL store)",
    )
    p.add_argument(
        "--store-connections",
        type=int,
        default=None,
        metavar="N",
        help="PostgreSQL: connections this process opens at most (default 10)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="mapping runs at the same time (see docs/operations.md, Sizing)",
    )
    p.add_argument("--path", default="/webhooks", help="URL path of the webhook endpoint")
    p.add_argument(
        "--allow-unsigned", action="store_true", help="accept (legacy) webhooks that carry no signature header"
    )
    p.add_argument("--signature-header", default="x-scope-hmac-sha256")
    p.add_argument("--signature-encoding", default="base64", choices=("base64", "hex"))
    p.add_argument("--max-body", type=int, default=1024 * 1024, help="largest webhook body in bytes")
    p.add_argument(
        "--dedupe-window",
        type=float,
        default=300.0,
        help="seconds in which an identical body without a delivery id is a duplicate",
    )
    p.add_argument("--retention-days", type=float, default=7.0, help="keep finished deliveries this long")
    p.add_argument("--lease", type=float, default=60.0, help="seconds a claim lasts without a heartbeat")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between looks for due retries")
    p.add_argument("--run-timeout", type=float, default=600.0, help="longest a single run may take")
    p.add_argument("--grace", type=float, default=10.0, help="seconds running jobs get to finish on SIGTERM")
    p.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: faster retries
    p.add_argument("--runner", default=DEFAULT_RUNNER, help=argparse.SUPPRESS)  # tests: module:factory
    p.add_argument(
        "--store-max-mb",
        type=float,
        default=None,
        help="refuse webhooks (503) rather than let the store grow past this size",
    )
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    options = ServiceOptions(
        path=args.path,
        signature_header=args.signature_header,
        signature_encoding=args.signature_encoding,
        allow_unsigned=args.allow_unsigned,
        max_body=args.max_body,
        dedupe_window=args.dedupe_window,
        retention=args.retention_days * 86400,
        lease=args.lease,
        poll=args.poll,
        run_timeout=args.run_timeout,
        grace=args.grace,
        time_scale=args.time_scale,
        runner=args.runner,
        log_format=args.log_format,
        log_level=args.log_level,
        role=args.role,
        store_connections=args.store_connections,
        store_max_bytes=None if args.store_max_mb is None else int(args.store_max_mb * 1024 * 1024),
    )
    try:
        code = serve(args.mappings, args.host, args.port, args.store, args.workers, options)
    except KeyboardInterrupt:
        code = 130
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.write("\nThis is a bug in wlmap. Please report it with the text above.\n")
        code = 3
    sys.exit(code)
