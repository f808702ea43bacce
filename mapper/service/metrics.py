"""What wlmap counts, exposed for Prometheus by prometheus-client, in a registry of the service's own.

A registry per `Metrics` (not the library's global one): a process may hold several services (the tests do),
each with its own counts. The registry also carries the library's process and Python collectors (CPU seconds,
resident memory, open files, garbage collections), so /metrics shows them without code of ours.

When the service runs in several processes (mapper/service/supervisor.py) every process counts into files of
its own in one folder, and the listener's /metrics adds them up: prometheus-client's multiprocess mode
(https://prometheus.github.io/client_python/multiprocess/). Chosen over the parent gathering each child's text:
the library already sums counters and histograms across processes (and keeps a dead process's counts), with no
request from process to process on each scrape. The process collectors are left out there: they would describe
the listener alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

# `generate_latest` writes the text format 0.0.4 (the library's CONTENT_TYPE_LATEST names a newer version).
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# In the 0.0.4 text format a `_created` sample is one more gauge per series that Prometheus only stores.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_DIRECTORY: Final = "PROMETHEUS_MULTIPROC_DIR"  # the library reads the folder from this variable


def count_in(folder: Path) -> None:
    """From now on this process counts into files in `folder`, shared with the service's other processes (call
    it in a new process before making a `Metrics`)."""
    os.environ[_DIRECTORY] = str(folder)  # read by the library when each value's file is opened
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def process_ended(pid: int, folder: Path) -> None:
    """A process of the service is gone: drop its `live` gauges (its counts stay in the totals)."""
    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


class Counter:
    """A number that only goes up, per label set: `inc(mapping="m")`, and `value(...)` to read it back."""

    def __init__(self, name: str, help_text: str, registry: CollectorRegistry, labels: Sequence[str] = ()) -> None:
        self._metric = prometheus_client.Counter(name, help_text, labels, registry=registry)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        (self._metric.labels(**labels) if labels else self._metric).inc(amount)

    def value(self, **labels: str) -> float:
        """The count for these labels (0 when never counted)."""
        for family in self._metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == labels:
                    return sample.value
        return 0.0


class Gauge:
    """A number that is set to what it is now, per label set."""

    def __init__(self, name: str, help_text: str, registry: CollectorRegistry, labels: Sequence[str] = ()) -> None:
        # Across processes: the value the last one set, among those still running.
        self._metric = prometheus_client.Gauge(
            name, help_text, labels, registry=registry, multiprocess_mode="livemostrecent"
        )

    def set(self, value: float, **labels: str) -> None:
        (self._metric.labels(**labels) if labels else self._metric).set(value)


class Histogram:
    """Observations counted into cumulative buckets, per label set."""

    def __init__(
        self,
        name: str,
        help_text: str,
        registry: CollectorRegistry,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self._metric = prometheus_client.Histogram(name, help_text, labels, registry=registry, buckets=buckets)

    def observe(self, value: float, **labels: str) -> None:
        (self._metric.labels(**labels) if labels else self._metric).observe(value)


class Metrics:
    """Everything wlmap counts, by name, in a registry of its own."""

    def __init__(self, shared: Path | None = None) -> None:
        """`shared`: the folder where the service's processes count together (see `count_in`)."""
        self.registry = registry = CollectorRegistry()
        self.shared = shared
        if shared is None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.received = Counter("wlmap_webhooks_received_total", "Webhook requests received.", registry)
        self.rejected = Counter(
            "wlmap_webhooks_rejected_total", "Webhook requests refused, by reason.", registry, ("reason",)
        )
        self.acknowledged = Counter("wlmap_webhooks_acknowledged_total", "Webhooks stored and answered 2xx.", registry)
        self.duplicates = Counter("wlmap_webhooks_duplicate_total", "Repeated deliveries, not run again.", registry)
        self.ignored = Counter("wlmap_webhooks_ignored_total", "Webhooks stored that no mapping wants.", registry)
        self.coalesced = Counter("wlmap_jobs_coalesced_total", "Pending jobs superseded by a newer event.", registry)
        self.runs = Counter(
            "wlmap_runs_total", "Mapping runs, by mapping and outcome.", registry, ("mapping", "outcome")
        )
        self.retries = Counter(
            "wlmap_retries_scheduled_total", "Runs to be tried again, by mapping.", registry, ("mapping",)
        )
        self.dead = Counter("wlmap_dead_total", "Jobs parked as dead, by mapping.", registry, ("mapping",))
        self.queue = Gauge(
            "wlmap_queue_jobs", "Jobs in the store by state (pending, running, retry, dead).", registry, ("state",)
        )
        self.mappings = Gauge("wlmap_mappings_loaded", "Mappings in force.", registry)
        self.ack_seconds = Histogram("wlmap_ack_seconds", "Time from request to acknowledgement.", registry)
        self.run_seconds = Histogram(
            "wlmap_run_seconds", "Time one mapping run took.", registry, ("mapping",), RUN_BUCKETS
        )

    def render(self) -> str:
        """The exposition text for GET /metrics (every process's counts added up, when they are shared)."""
        if self.shared is None:
            return generate_latest(self.registry).decode("utf-8")
        together = CollectorRegistry()
        multiprocess.MultiProcessCollector(together, str(self.shared))  # type: ignore[no-untyped-call]
        return generate_latest(together).decode("utf-8")
