"""The running service: the listener and the worker pool on one event loop, until SIGTERM or Ctrl-C.

Started by `wlmap run --serve` (mapper/cli), which hands `serve` a ServiceOptions. With a PostgreSQL store
(`--store postgresql://...`) any number of processes share one queue, and `--role` splits them: `listener`
takes webhooks and runs nothing, `worker` runs jobs and takes no webhooks (it still answers /healthz, /readyz
and /metrics), `all` (the default) does both.

Exit codes: 0 stopped by SIGTERM, 130 by Ctrl-C, 1 a problem the user can fix (invalid mappings, no secret,
store or port unusable), 3 a bug in wlmap.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from starlette.applications import Starlette

from mapper.errors import MappingError, as_text
from mapper.language.plan import LINK_KEY_ENV
from mapper.links.signing import keys_from
from mapper.run.secrets import masker_for
from mapper.service import links
from mapper.service.connections import guarded
from mapper.service.listener import ListenerOptions, Network, create_app
from mapper.service.logs import configure_logging, hide
from mapper.service.mappings import Mappings
from mapper.service.metrics import Metrics
from mapper.service.options import (
    LINKS_PATH,
    LINKS_TOKEN_ENV,
    LINKS_TOKEN_MIN,
    ROLES,
    SECRETS_ENV,
    UI_PASSWORD_ENV,
    UI_PATH,
    UI_TOKEN_ENV,
    UI_USER_ENV,
    ServiceError,
    ServiceOptions,
)
from mapper.service.replays import Replays
from mapper.service.runners import Runner, load_runner
from mapper.service.signature import SignatureScheme
from mapper.service.store import Store, StoreError, describe, is_postgres, open_store
from mapper.service.timers import Timers
from mapper.service.upkeep import upkeep
from mapper.service.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from mapper.service.console.app import Given

log = logging.getLogger("wlmap.service")

IO_THREADS = 64  # the store's blocking calls (SQLite commits, PostgreSQL round trips) run on these


def serve(options: ServiceOptions, console: Given | None = None) -> int:
    """Run the listener and the workers (and the console, when `console` has a credential) until SIGTERM or
    Ctrl-C; returns the exit code."""
    configure_logging(options.log_format, options.log_level)
    try:
        return asyncio.run(_serve(options, console))
    except MappingError as exc:
        sys.stderr.write(as_text(exc.problems) + "\nwlmap: the mappings are not valid; nothing started\n")
    except (ServiceError, StoreError) as exc:
        sys.stderr.write(f"wlmap: {exc}\n")
    return 1


def _signature_scheme(options: ServiceOptions) -> SignatureScheme:
    """What can be refused before anything is opened: the role, a missing secret, the signature scheme."""
    if options.role not in ROLES:
        raise ServiceError(f"--role must be one of {', '.join(ROLES)}, not {options.role!r}")
    if options.takes_webhooks and not options.secrets and not options.allow_unsigned:
        raise ServiceError(
            f"no webhook secret: set {SECRETS_ENV} (comma-separated during a rotation), "
            "or pass --allow-unsigned to accept legacy webhooks that carry no signature"
        )
    try:
        scheme = SignatureScheme(header=options.signature_header, encoding=options.signature_encoding)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    networks = unsigned_from(options.unsigned_from)
    if networks and not options.allow_unsigned:
        raise ServiceError("--unsigned-from says where unsigned webhooks may come from: it needs --allow-unsigned")
    if options.allow_unsigned and options.takes_webhooks:
        log.warning(
            "--allow-unsigned: legacy webhooks WITHOUT a %s header (and without X-Scope-* headers) are accepted "
            "unverified from %s, for mappings whose trigger says `allow_unsigned: true`; a present but wrong "
            "signature is still refused",
            scheme.header,
            ", ".join(map(str, networks)) or "any address",
        )
    return scheme


def _link_options(options: ServiceOptions) -> links.LinkOptions | None:
    """The /links endpoint's settings when --links asks for it; refused without a token of its own."""
    if not (options.links and options.takes_webhooks):
        return None
    token = options.links_token
    if not token:
        raise ServiceError(f"--links needs a token of its own: set {LINKS_TOKEN_ENV}")
    if len(token) < LINKS_TOKEN_MIN:
        raise ServiceError(f"{LINKS_TOKEN_ENV} is too short: use at least {LINKS_TOKEN_MIN} random characters")
    if token in options.secrets:
        raise ServiceError(f"{LINKS_TOKEN_ENV} must not be a webhook secret: give the links a token of their own")
    if options.path == LINKS_PATH or options.path.startswith(LINKS_PATH + "/"):
        raise ServiceError(f"--path {options.path}: with --links, {LINKS_PATH} is taken; choose another path")
    if options.links_rate <= 0:
        raise ServiceError("--links-rate must be more than 0 requests a second")
    return links.LinkOptions(token=token, keys=keys_from(options.env.get(LINK_KEY_ENV)), rate=options.links_rate)


def unsigned_from(given: str | None) -> tuple[Network, ...]:
    """--unsigned-from: comma-separated networks ("203.0.113.0/24,2001:db8::/32", a lone address)."""
    networks = []
    for part in (piece.strip() for piece in (given or "").split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ServiceError(f"--unsigned-from: `{part}` is not an address or network (203.0.113.0/24)") from None
    return tuple(networks)


async def _serve(options: ServiceOptions, console: Given | None = None) -> int:
    scheme = _signature_scheme(options)
    if options.ui_port is not None and (console is None or not console.credentials.configured):
        raise ServiceError(
            f"--ui-port: the console needs a credential: set {UI_PASSWORD_ENV} (and {UI_USER_ENV}) or {UI_TOKEN_ENV}"
        )
    link_options = _link_options(options)
    mappings = Mappings(options.mappings, options.env)
    mappings.load()
    _hide_secrets(mappings, options)
    if options.allow_unsigned and options.takes_webhooks:
        allowing = sorted(name for name, plan in mappings.current().items() if plan.trigger.allow_unsigned)
        log.warning(
            "--allow-unsigned: mappings that take unsigned webhooks: %s",
            ", ".join(allowing) or "none (every unsigned webhook will be refused; see `allow_unsigned` in a trigger)",
        )
    async with contextlib.AsyncExitStack() as resources:  # closed in reverse, whatever happens
        runner = load_runner(options.runner, options.env)
        resources.push_async_callback(_quietly, runner.aclose)
        sock = _bind(options.host, options.port)
        resources.callback(sock.close)
        store = open_store(options.store, max_bytes=options.store_max_bytes, connections=options.store_connections)
        resources.push_async_callback(asyncio.to_thread, store.close)
        if not store.gives_space_back:
            log.warning(
                "store %s was made before wlmap gave pruned space back to the disk: it will not shrink; "
                "stop the service and run `wlmap prune --older-than %gd --vacuum` once",
                describe(options.store),
                options.retention_days,
            )
        executor = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="wlmap-io")
        resources.callback(executor.shutdown, wait=False)
        metrics = Metrics()
        metrics.mappings.set(len(mappings.current()))
        worker = _worker(store, mappings, runner, options, metrics, executor)
        if options.runs_jobs:  # PostgreSQL: jobs stored by other processes wake this one's workers at once
            resources.callback(store.watch(_threadsafe(asyncio.get_running_loop(), worker.wake)))
        timers = Timers(
            store, mappings.current, executor, interval=options.poll, on_jobs=worker.wake, time_scale=options.time_scale
        )
        app = _app(store, mappings, worker, options, scheme, metrics, executor, timers)
        if link_options is not None:  # before the catch-all 404; the webhook path cannot be under /links
            app.router.routes[0:0] = links.routes(mappings.current, link_options, LINKS_PATH)
        replays = _replays(store, mappings, worker, options, executor, resources)
        if console is not None and console.credentials.configured:
            await _console(app, console, store, mappings, replays.wake, options, executor, resources)
        housekeeping = asyncio.create_task(
            upkeep(
                mappings,
                store,
                executor,
                retention=options.retention,
                interval=options.reload_interval,
                on_reload=lambda: _reloaded(mappings, options, metrics),
                on_reclaim=worker.wake,
            )
        )
        resources.push_async_callback(_cancel, housekeeping)
        if options.runs_jobs:  # buckets close and schedules fire where jobs run: the store makes each happen once
            resources.push_async_callback(_cancel, asyncio.create_task(timers.serve(), name="wlmap-timers"))
        _log_start(options, sock, mappings)
        code = await _run(_Server(_config(app, options)), sock, worker, options.runs_jobs)
    log.info("stopped")
    return code


def _hide_secrets(mappings: Mappings, options: ServiceOptions) -> None:
    """The log lines hide the mappings' secrets and the webhook secrets (and name the other env values)."""
    masker = masker_for(mappings.current().values(), options.env)
    for secret in options.secrets:
        masker.add(secret)
    hide(masker)


def _reloaded(mappings: Mappings, options: ServiceOptions, metrics: Metrics) -> None:
    metrics.mappings.set(len(mappings.current()))
    _hide_secrets(mappings, options)


def _replays(
    store: Store,
    mappings: Mappings,
    worker: Worker,
    options: ServiceOptions,
    executor: ThreadPoolExecutor,
    resources: contextlib.AsyncExitStack,
) -> Replays:
    """The desk that carries out the replays operators ask for (a worker process's job)."""
    replays = Replays(
        store,
        mappings.current,
        refused=lambda: mappings.refused,
        on_made=_threadsafe(asyncio.get_running_loop(), worker.wake),
        poll=options.poll,
        executor=executor,
    )
    if options.runs_jobs:
        resources.push_async_callback(_cancel, asyncio.create_task(replays.serve(), name="wlmap-replays"))
    return replays


async def _console(
    app: Starlette,
    given: Given,
    store: Store,
    mappings: Mappings,
    wake: Callable[[], None],
    options: ServiceOptions,
    executor: ThreadPoolExecutor,
    resources: contextlib.AsyncExitStack,
) -> None:
    """The console under /ui: beside the webhooks, or on a socket of its own (--ui-port)."""
    from mapper.service.console.app import Parts, routes

    parts = Parts(
        store, mappings, given.credentials, wake, given.dry_run, executor, describe(options.store), options.role
    )
    if options.ui_port is None:
        app.router.routes[0:0] = routes(parts)
        return
    host = options.ui_host or options.host
    sock = _bind(host, options.ui_port)
    resources.callback(sock.close)
    console = Starlette(routes=routes(parts))
    console.router.redirect_slashes = False
    server = _Quiet(_config(console, options))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="wlmap-console")

    async def stop() -> None:
        server.should_exit = True
        await _quietly(lambda: task)

    resources.push_async_callback(stop)
    log.info("console on http://%s:%d%s/", host, sock.getsockname()[1], UI_PATH)


class _Quiet(uvicorn.Server):
    """A second server (the console's) that leaves the signals to the main one, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _worker(
    store: Store,
    mappings: Mappings,
    runner: Runner,
    options: ServiceOptions,
    metrics: Metrics,
    executor: ThreadPoolExecutor,
) -> Worker:
    timings = WorkerOptions(
        concurrency=options.workers,
        lease=options.lease,
        poll=options.poll,
        run_timeout=options.run_timeout,
        grace=options.grace,
        time_scale=options.time_scale,
        trace_body_max=options.trace_body_max,
    )
    return Worker(store, mappings.current, runner.run, timings, metrics=metrics, executor=executor)


def _app(
    store: Store,
    mappings: Mappings,
    worker: Worker,
    options: ServiceOptions,
    scheme: SignatureScheme,
    metrics: Metrics,
    executor: ThreadPoolExecutor,
    timers: Timers,
) -> Starlette:
    def readiness() -> str | None:
        if not mappings.current():
            return "no mappings loaded"
        try:
            store.ping()
        except StoreError as exc:
            return f"store not writable: {exc}"
        return _disk_problem(options)

    listening = ListenerOptions(
        path=options.path,
        secrets=options.secrets,
        scheme=scheme,
        allow_unsigned=options.allow_unsigned,
        unsigned_from=unsigned_from(options.unsigned_from),
        max_body=options.max_body,
        body_timeout=options.body_timeout,
        dedupe_window=options.dedupe_window,
    )
    app = create_app(
        store,
        mappings.route,
        listening,
        metrics=metrics,
        executor=executor,
        on_stored=_both(worker.wake, timers.poke) if options.runs_jobs else lambda: None,
        readiness=readiness,
        explain=mappings.explain,
    )
    if not options.takes_webhooks:  # a worker keeps /healthz, /readyz and /metrics; the webhook path is a 404
        app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != options.path]
    return app


def _threadsafe(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> Callable[[], None]:
    """`call` on the loop, from any thread; nothing once the loop is closed."""

    def scheduled() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(call)

    return scheduled


def _disk_problem(options: ServiceOptions) -> str | None:
    """A SQLite store's disk with less room than a few webhooks need: not ready before webhooks are refused."""
    if is_postgres(options.store):
        return None
    folder = Path(options.store).resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None  # the store's own probe said it can write
    floor = 4 * options.max_body
    if free < floor:
        return f"store not writable: {free // 1024} KiB free on the store's disk (less than {floor // 1024} KiB)"
    return None


def _config(app: Starlette, options: ServiceOptions) -> uvicorn.Config:
    """uvicorn's settings: h11 with a head deadline and a connection cap (see `connections`), keep-alive."""
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=guarded(options.header_timeout, _connection_cap(options.max_connections)),
        timeout_keep_alive=options.keep_alive,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(options.grace)),
    )


def _connection_cap(wanted: int) -> int:
    """The connection cap, with the open-files limit raised to fit it where the hard limit allows (as Go
    programs do at start); without room, a lower cap than a refused accept() for every newcomer."""
    spare = 256  # the store, the mappings, outgoing connections to targets, the log
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = wanted + spare
        if soft != resource.RLIM_INFINITY and soft < needed:
            raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    except (OSError, ValueError):
        return wanted
    if soft != resource.RLIM_INFINITY and soft < wanted + spare:
        cap = max(1, soft - spare)
        log.warning("the open-files limit (%d) allows %d connections, not %d (--max-connections)", soft, cap, wanted)
        return cap
    return wanted


def _log_start(options: ServiceOptions, sock: socket.socket, mappings: Mappings) -> None:
    served = f"{options.path} and {LINKS_PATH}/" if options.links else options.path
    doing = {
        "all": f"{served} with {options.workers} worker(s)",
        "listener": f"{served} (listener only)",
        "worker": f" (health and metrics only) with {options.workers} worker(s)",
    }[options.role]
    log.info(
        "listening on http://%s:%d%s; mappings: %s; store: %s",
        options.host,
        sock.getsockname()[1],
        doing,
        ", ".join(sorted(mappings.current())) or "none",
        describe(options.store),
    )


async def _run(server: _Server, sock: socket.socket, worker: Worker, runs_jobs: bool) -> int:
    """Serve until a signal (or the worker pool failing), then let the workers finish; the exit code."""
    failed: list[BaseException] = []

    def on_worker_end(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            failed.append(cast(BaseException, task.exception()))
            log.critical("the worker pool stopped unexpectedly", exc_info=task.exception())
            server.stop()

    work = asyncio.create_task(worker.serve() if runs_jobs else asyncio.sleep(0), name="wlmap-workers")
    work.add_done_callback(on_worker_end)
    await server.serve(sock)
    log.info("stopped taking webhooks; finishing or releasing running jobs")
    worker.stop()
    await _quietly(lambda: work)
    if failed:
        return 3
    return 130 if server.signal == signal.SIGINT else 0


class _Server:
    """uvicorn's server, with our SIGTERM/SIGINT handling: stop gracefully and report which signal."""

    def __init__(self, config: uvicorn.Config) -> None:
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


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        first()
        second()

    return call


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
