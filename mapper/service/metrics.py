"""Counters and histograms in the Prometheus text format (0.0.4), written by hand: no client library needed.

https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
Updated from the event loop's thread only, so there is no locking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((name, str(value)) for name, value in labels.items()))


def _samples(name: str, help_text: str, kind: str, values: Mapping[Labels, float]) -> Iterable[str]:
    """A counter's or gauge's exposition: HELP, TYPE, then one line per label set."""
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {kind}"
    for labels, value in sorted(values.items()):
        yield f"{name}{_labels(labels)} {_number(value)}"


@dataclass
class Counter:
    """A number that only goes up, per label set."""

    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = _key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self.values.get(_key(labels), 0.0)

    def lines(self) -> Iterable[str]:
        return _samples(self.name, self.help, "counter", self.values)


@dataclass
class Gauge:
    """A number that is set to what it is now, per label set."""

    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def set(self, value: float, **labels: str) -> None:
        self.values[_key(labels)] = value

    def lines(self) -> Iterable[str]:
        return _samples(self.name, self.help, "gauge", self.values)


@dataclass
class _Series:
    buckets: list[int]
    count: int = 0
    total: float = 0.0


@dataclass
class Histogram:
    """Observations counted into cumulative buckets, per label set."""

    name: str
    help: str
    bounds: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[Labels, _Series] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = _key(labels)
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = _Series([0] * len(self.bounds))
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                found.buckets[index] += 1
        found.count += 1
        found.total += value

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, found in sorted(self.series.items()):
            for bound, count in zip(self.bounds, found.buckets, strict=True):
                yield f"{self.name}_bucket{_labels(labels, (('le', _number(bound)),))} {count}"
            yield f"{self.name}_bucket{_labels(labels, (('le', '+Inf'),))} {found.count}"
            yield f"{self.name}_sum{_labels(labels)} {_number(found.total)}"
            yield f"{self.name}_count{_labels(labels)} {found.count}"


class Metrics:
    """Everything wlmap counts, by name."""

    def __init__(self) -> None:
        self.received = Counter("wlmap_webhooks_received_total", "Webhook requests received.")
        self.rejected = Counter("wlmap_webhooks_rejected_total", "Webhook requests refused, by reason.")
        self.acknowledged = Counter("wlmap_webhooks_acknowledged_total", "Webhooks stored and answered 2xx.")
        self.duplicates = Counter("wlmap_webhooks_duplicate_total", "Repeated deliveries, not run again.")
        self.ignored = Counter("wlmap_webhooks_ignored_total", "Webhooks stored that no mapping wants.")
        self.coalesced = Counter("wlmap_jobs_coalesced_total", "Pending jobs superseded by a newer event.")
        self.runs = Counter("wlmap_runs_total", "Mapping runs, by mapping and outcome.")
        self.retries = Counter("wlmap_retries_scheduled_total", "Runs to be tried again, by mapping.")
        self.dead = Counter("wlmap_dead_total", "Jobs parked as dead, by mapping.")
        self.queue = Gauge("wlmap_queue_jobs", "Jobs in the store by state (pending, running, retry, dead).")
        self.mappings = Gauge("wlmap_mappings_loaded", "Mappings in force.")
        self.ack_seconds = Histogram("wlmap_ack_seconds", "Time from request to acknowledgement.")
        self.run_seconds = Histogram("wlmap_run_seconds", "Time one mapping run took.", RUN_BUCKETS)
        for counter in (self.received, self.acknowledged, self.duplicates, self.ignored, self.coalesced):
            counter.inc(0)  # shown as 0 from the start, so rate() works from the first scrape

    def render(self) -> str:
        """The exposition text for GET /metrics."""
        families = (
            self.received,
            self.rejected,
            self.acknowledged,
            self.duplicates,
            self.ignored,
            self.coalesced,
            self.runs,
            self.retries,
            self.dead,
            self.queue,
            self.mappings,
            self.ack_seconds,
            self.run_seconds,
        )
        return "\n".join(line for family in families for line in family.lines()) + "\n"
