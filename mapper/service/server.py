"""The running service: the listener and the worker pool, until SIGTERM or Ctrl-C.

Started by `wlmap run --serve` (mapper/cli), which hands `serve` a ServiceOptions. On the embedded SQLite store
the listener and `--processes` worker processes run apart under a supervisor (mapper/service/supervisor.py);
`--processes 0` keeps them on one event loop in one process. With a PostgreSQL store
(`--store postgresql://...`) any number of processes share one queue, and `--role` splits them: `listener`
takes webhooks and runs nothing, `worker` runs jobs and takes no webhooks (it still answers /healthz, /readyz
and /metrics), `all` (the default) does both.

Exit codes: 0 stopped by SIGTERM, 130 by Ctrl-C, 1 a problem the user can fix (invalid mappings, no secret,
store or port unusable), 3 a bug in wlmap.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import uvloop

from mapper.errors import MappingError, as_text
from mapper.run.secrets import masker_for
from mapper.service import links, pieces, preflight, supervisor, wakeups, webserver
from mapper.service.logs import configure_logging, hide
from mapper.service.mappings import Mappings
from mapper.service.metrics import Metrics, count_in
from mapper.service.options import LINKS_PATH, ServiceError, ServiceOptions
from mapper.service.pieces import cancel, quietly
from mapper.service.runners import find_runner, load_runner
from mapper.service.store import Store, StoreError, describe, is_postgres, open_store
from mapper.service.supervisor import Part, Supervisor
from mapper.service.timers import Timers
from mapper.service.upkeep import upkeep
from mapper.service.worker import Worker

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from mapper.service.console.app import Given

_METRICS_PREFIX: Final = "wlmap-metrics-"
log = logging.getLogger("wlmap.service")

IO_THREADS = 64  # the store's blocking calls (SQLite commits, PostgreSQL round trips) run on these
# Worker processes run at a lower priority than the listener (nice 5: about a third of its share of a busy CPU),
# so that acknowledgements are not kept waiting behind mapping runs when the cores are all in use.
WORKER_NICE = 5


@dataclasses.dataclass(frozen=True)
class _Place:
    """Where this process sits: alone (the defaults), or one part of a supervised service."""

    mappings: Mappings | None = None  # loaded by the supervisor
    sock: socket.socket | None = None  # the listener's socket, opened by the supervisor
    shared: Path | None = None  # the folder where the processes count their metrics together
    wake_workers: Callable[[], None] | None = None  # the listener: tell the worker processes jobs were stored
    woken_by: socket.socket | None = None  # a worker process: where those wake-ups arrive
    prunes: bool = True  # old events are pruned by one process only
    http: bool = True  # a worker process under a supervisor serves no HTTP: the listener answers for it


def serve(options: ServiceOptions, console: Given | None = None) -> int:
    """Run the listener and the workers (and the console, when `console` has a credential) until SIGTERM or
    Ctrl-C; returns the exit code."""
    configure_logging(options.log_format, options.log_level)
    try:
        if options.processes > 0 and options.role == "all" and not is_postgres(options.store):
            if supervisor.available():
                return _supervised(options, console)
            log.warning("--processes: this system cannot fork and watch processes; running in one process")
        return run_loop(_serve(options, console, _Place()))
    except MappingError as exc:
        sys.stderr.write(as_text(exc.problems) + "\nwlmap: the mappings are not valid; nothing started\n")
    except (ServiceError, StoreError) as exc:
        sys.stderr.write(f"wlmap: {exc}\n")
    return 1


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """`main` on uvloop's event loop (libuv: fewer wake-ups and system calls per request than asyncio's own)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _supervised(options: ServiceOptions, console: Given | None) -> int:
    """Check everything here, then fork the listener and the worker processes (supervisor.py)."""
    mappings = _mappings(options, console)  # refused here, before any child starts
    find_runner(options.runner)
    store = open_store(options.store, max_bytes=options.store_max_bytes)
    _warn_old_layout(store, options)
    store.close()  # the children open their own; no thread may run here when they are forked
    sock = webserver.bind(options.host, options.port)
    _remove_orphaned_metrics()
    shared = Path(tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-"))  # a new folder per run: no stale counts
    try:
        _log_start(options, sock, mappings, f"{options.processes} worker process(es) of {options.workers} runs each")
        supervising = Supervisor(
            sock, options.processes, options.grace, shared, lambda part: _child(options, console, mappings, part)
        )
        code = supervising.serve()
    finally:
        sock.close()
        shutil.rmtree(shared, ignore_errors=True)
    log.info("stopped")
    return code


def _remove_orphaned_metrics() -> None:
    """Remove the metrics folders of earlier runs whose main process is gone without cleaning up (killed with -9):
    each holds a few MB of memory-mapped files. A folder whose process still runs (or whose pid was reused) stays."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*-*"):
        pid = folder.name[len(_METRICS_PREFIX) :].split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # not ours to signal (another user's pid), or the folder went away
            continue


def _child(options: ServiceOptions, console: Given | None, mappings: Mappings, part: Part) -> int:
    """One supervised process: the listener, or a worker process with no HTTP of its own. `mappings` are the
    supervisor's, loaded before the fork (each process then reloads what changes on its own)."""
    count_in(part.shared)
    listener = part.role == "listener"
    if not listener:
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)
    place = _Place(
        mappings=mappings,
        sock=part.sock,
        shared=part.shared,
        wake_workers=wakeups.waker(part.senders) if listener else None,
        woken_by=part.receiver,
        prunes=part.role == "worker" and part.index == 0,
        http=listener,
    )
    try:
        return run_loop(_serve(dataclasses.replace(options, role=part.role), console if listener else None, place))
    except (ServiceError, StoreError) as exc:
        log.error("the %s process cannot run: %s", part.name, exc)
        return 1


def _mappings(options: ServiceOptions, console: Given | None) -> Mappings:
    """The mappings, loaded, after the checks that need nothing opened; the log hides their secrets."""
    scheme = preflight.signature_scheme(options)
    preflight.console_allowed(options, console)
    preflight.link_options(options)
    mappings = Mappings(options.mappings, options.env)
    mappings.load()
    _hide_secrets(mappings, options)
    preflight.warn_unsigned(options, scheme)
    if options.allow_unsigned and options.takes_webhooks:
        allowing = sorted(name for name, plan in mappings.current().items() if plan.trigger.allow_unsigned)
        log.warning(
            "--allow-unsigned: mappings that take unsigned webhooks: %s",
            ", ".join(allowing) or "none (every unsigned webhook will be refused; see `allow_unsigned` in a trigger)",
        )
    return mappings


def _warn_old_layout(store: Store, options: ServiceOptions) -> None:
    if not store.gives_space_back:
        log.warning(
            "store %s was made before wlmap gave pruned space back to the disk: it will not shrink; "
            "stop the service and run `wlmap prune --older-than %gd --vacuum` once",
            describe(options.store),
            options.retention_days,
        )


async def _serve(options: ServiceOptions, console: Given | None, place: _Place) -> int:
    alone = place.mappings is None
    mappings = _mappings(options, console) if place.mappings is None else place.mappings
    scheme = preflight.signature_scheme(options)
    async with contextlib.AsyncExitStack() as resources:  # closed in reverse, whatever happens
        runner = load_runner(options.runner, options.env)
        resources.push_async_callback(quietly, runner.aclose)
        sock = place.sock
        if sock is None and place.http:
            sock = webserver.bind(options.host, options.port)
            resources.callback(sock.close)
        store = open_store(options.store, max_bytes=options.store_max_bytes, connections=options.store_connections)
        resources.push_async_callback(asyncio.to_thread, store.close)
        if alone:
            _warn_old_layout(store, options)
        executor = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="wlmap-io")
        resources.callback(executor.shutdown, wait=False)
        metrics = Metrics(place.shared)
        metrics.mappings.set(len(mappings.current()))
        refresh = _refresh(mappings, options, metrics)
        worker = pieces.worker(store, mappings, runner, options, metrics, executor, refresh)
        timers = Timers(
            store, mappings.current, executor, interval=options.poll, on_jobs=worker.wake, time_scale=options.time_scale
        )
        if options.runs_jobs:  # PostgreSQL: jobs stored by other processes wake this one's workers at once
            resources.callback(store.watch(pieces.threadsafe(asyncio.get_running_loop(), worker.wake)))
            if place.woken_by is not None:  # SQLite under a supervisor: the listener process wakes this one
                resources.callback(wakeups.listen(place.woken_by, _both(worker.wake, timers.poke)))
        replays = pieces.replays(store, mappings, worker, options, executor, resources)
        app = None
        if place.http:
            on_stored = place.wake_workers or (_both(worker.wake, timers.poke) if options.runs_jobs else _nothing)
            app = pieces.app(store, mappings, options, scheme, metrics, executor, on_stored)
            await _beside(app, options, console, store, mappings, replays.wake, executor, resources)
        housekeeping = asyncio.create_task(
            upkeep(
                mappings,
                store,
                executor,
                retention=options.retention if place.prunes else None,
                interval=options.reload_interval,
                on_reload=lambda: _reloaded(mappings, options, metrics),
                on_reclaim=worker.wake,
            )
        )
        resources.push_async_callback(cancel, housekeeping)
        if options.runs_jobs:  # buckets close and schedules fire where jobs run: the store makes each happen once
            resources.push_async_callback(cancel, asyncio.create_task(timers.serve(), name="wlmap-timers"))
        if app is None:
            code = await _run_headless(worker)
        else:
            if alone:
                _log_start(options, cast(socket.socket, sock), mappings, f"{options.workers} worker(s)")
            server = webserver.Server(webserver.config(app, options))
            code = await _run(server, cast(socket.socket, sock), worker, options.runs_jobs)
    if alone:
        log.info("stopped")
    return code


async def _beside(
    app: Starlette,
    options: ServiceOptions,
    console: Given | None,
    store: Store,
    mappings: Mappings,
    wake_replays: Callable[[], None],
    executor: ThreadPoolExecutor,
    resources: contextlib.AsyncExitStack,
) -> None:
    """What the webhook endpoint's server also serves when asked: the deep links, the console."""
    link_options = preflight.link_options(options)
    if link_options is not None:  # before the catch-all 404; the webhook path cannot be under /links
        app.router.routes[0:0] = links.routes(mappings.current, link_options, LINKS_PATH)
    if console is not None and console.credentials.configured:
        await pieces.console(app, console, store, mappings, wake_replays, options, executor, resources)


def _hide_secrets(mappings: Mappings, options: ServiceOptions) -> None:
    """The log lines hide the mappings' secrets and the webhook secrets (and name the other env values)."""
    masker = masker_for(mappings.current().values(), options.env)
    for secret in options.secrets:
        masker.add(secret)
    hide(masker)


def _refresh(mappings: Mappings, options: ServiceOptions, metrics: Metrics) -> Callable[[], bool]:
    """Reload changed mappings now (not at the next look), with what a reload entails."""

    def refresh() -> bool:
        changed = mappings.reload_if_changed()
        if changed:
            _reloaded(mappings, options, metrics)
        return changed

    return refresh


def _reloaded(mappings: Mappings, options: ServiceOptions, metrics: Metrics) -> None:
    metrics.mappings.set(len(mappings.current()))
    _hide_secrets(mappings, options)


def _log_start(options: ServiceOptions, sock: socket.socket, mappings: Mappings, workers: str) -> None:
    served = f"{options.path} and {LINKS_PATH}/" if options.links else options.path
    doing = {
        "all": f"{served} with {workers}",
        "listener": f"{served} (listener only)",
        "worker": f" (health and metrics only) with {workers}",
    }[options.role]
    log.info(
        "listening on http://%s:%d%s; mappings: %s; store: %s",
        options.host,
        sock.getsockname()[1],
        doing,
        ", ".join(sorted(mappings.current())) or "none",
        describe(options.store),
    )


async def _run(server: webserver.Server, sock: socket.socket, worker: Worker, runs_jobs: bool) -> int:
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
    if runs_jobs:
        log.info("stopped taking webhooks; finishing or releasing running jobs")
    worker.stop()
    await quietly(lambda: work)
    if failed:
        return 3
    return 130 if server.signal == signal.SIGINT else 0


async def _run_headless(worker: Worker) -> int:
    """A worker process under a supervisor: run jobs until SIGTERM, then finish or release them."""
    signals = webserver.Signals()
    work = asyncio.create_task(worker.serve(), name="wlmap-workers")
    work.add_done_callback(lambda _: signals.stop())
    await signals.wait()
    worker.stop()
    if not work.done() or work.cancelled() or work.exception() is None:
        await quietly(lambda: work)
        return 130 if signals.signal == signal.SIGINT else 0
    log.critical("the worker pool stopped unexpectedly", exc_info=work.exception())
    return 3


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        first()
        second()

    return call


def _nothing() -> None:
    return None
