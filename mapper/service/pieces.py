"""The pieces of a running service, built from its options: the worker pool, the listener's app, the replays
desk and the console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from mapper.service import preflight, webserver
from mapper.service.listener import ListenerOptions, create_app
from mapper.service.mappings import Mappings
from mapper.service.metrics import Metrics
from mapper.service.options import UI_PATH, ServiceOptions
from mapper.service.replays import Replays
from mapper.service.signature import SignatureScheme
from mapper.service.store import Store, StoreError, describe
from mapper.service.worker import Worker, WorkerOptions

if TYPE_CHECKING:
    from mapper.service.console.app import Given

log = logging.getLogger("wlmap.service")


def replays(
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
        on_made=threadsafe(asyncio.get_running_loop(), worker.wake),
        poll=options.poll,
        executor=executor,
    )
    if options.runs_jobs:
        resources.push_async_callback(cancel, asyncio.create_task(replays.serve(), name="wlmap-replays"))
    return replays


async def console(
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
    sock = webserver.bind(host, options.ui_port)
    resources.callback(sock.close)
    console = Starlette(routes=routes(parts))
    console.router.redirect_slashes = False
    server = webserver.Quiet(webserver.config(console, options))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="wlmap-console")

    async def stop() -> None:
        server.should_exit = True
        await quietly(lambda: task)

    resources.push_async_callback(stop)
    log.info("console on http://%s:%d%s/", host, sock.getsockname()[1], UI_PATH)


def worker(
    store: Store,
    mappings: Mappings,
    runner: Any,
    options: ServiceOptions,
    metrics: Metrics,
    executor: ThreadPoolExecutor,
    refresh: Callable[[], bool],
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
    return Worker(store, mappings.current, runner.run, timings, metrics=metrics, executor=executor, refresh=refresh)


def app(
    store: Store,
    mappings: Mappings,
    options: ServiceOptions,
    scheme: SignatureScheme,
    metrics: Metrics,
    executor: ThreadPoolExecutor,
    on_stored: Callable[[], None],
) -> Starlette:
    def readiness() -> str | None:
        if not mappings.current():
            return "no mappings loaded"
        try:
            store.ping()
        except StoreError as exc:
            return f"store not writable: {exc}"
        return preflight.disk_problem(options)

    listening = ListenerOptions(
        path=options.path,
        secrets=options.secrets,
        scheme=scheme,
        allow_unsigned=options.allow_unsigned,
        unsigned_from=preflight.unsigned_from(options.unsigned_from),
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
        on_stored=on_stored,
        readiness=readiness,
        explain=mappings.explain,
    )
    if not options.takes_webhooks:  # a worker keeps /healthz, /readyz and /metrics; the webhook path is a 404
        app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != options.path]
    return app


def threadsafe(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> Callable[[], None]:
    """`call` on the loop, from any thread; nothing once the loop is closed."""

    def scheduled() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(call)

    return scheduled


async def quietly(step: Callable[[], Awaitable[Any]]) -> None:
    """Await a clean-up step; a failure in it is logged, not raised (the others must still run)."""
    try:
        await step()
    except Exception:
        log.exception("clean-up step failed")


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
