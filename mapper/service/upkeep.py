"""The service's housekeeping: reload changed mappings, take back leases of dead processes, prune old events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Final

from mapper.service.mappings import Mappings
from mapper.service.store import Store, StoreError, run_blocking

log = logging.getLogger("wlmap.service")

PRUNE_EVERY: Final = 3600.0  # seconds
RECLAIM_EVERY: Final = 10.0  # seconds between looks for leases held by processes that are gone


async def upkeep(
    mappings: Mappings,
    store: Store,
    executor: Executor,
    *,
    retention: float | None,
    interval: float,
    on_reload: Callable[[], None],
    on_reclaim: Callable[[], None] = lambda: None,
) -> None:
    """Until cancelled: reload changed mappings every `interval`; take back the leases of processes on this
    machine that are gone (at once on start: a restart after kill -9 picks up its own jobs); prune what is
    older than `retention` hourly (no pruning when None: another process of the service prunes)."""
    next_prune = next_reclaim = 0.0
    while True:
        try:
            if await run_blocking(executor, mappings.reload_if_changed):
                on_reload()
            if time.monotonic() >= next_reclaim:
                next_reclaim = time.monotonic() + RECLAIM_EVERY
                taken = await run_blocking(executor, store.reclaim)
                if taken:
                    log.warning(
                        "took back %d job(s) whose process is gone (killed?): %s",
                        len(taken),
                        ", ".join(map(str, taken)),
                    )
                    on_reclaim()
            if retention is not None and time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                pruned = await run_blocking(executor, lambda: store.prune_events(store.clock() - retention))
                if pruned.jobs or pruned.deliveries:
                    log.info(
                        "pruned %d finished job(s) and %d stored webhook(s) older than %g days; gave back %d bytes",
                        pruned.jobs,
                        pruned.deliveries,
                        retention / 86400,
                        pruned.freed_bytes,
                    )
        except StoreError as exc:
            log.error("upkeep: %s", exc)
        except Exception:
            log.exception("upkeep failed; it will try again")
        await asyncio.sleep(interval)
