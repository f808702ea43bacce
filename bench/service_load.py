"""The listener and workers under load (issues 4 and 16): every figure next to a baseline measured in the same run.

    python bench/service_load.py [--quick] [--only ack,latency,e2e] [--processes 0,default] [--workers N]
                                 [--peers httpx,aiohttp] [--stacks httpcore]

Each wlmap figure is measured for every `--processes` setting (default: 0, one process, and wlmap's default,
a listener process beside worker processes); CPU and memory are those of all the server's processes.

1. ack       acknowledged webhooks/s, closed loop (50 connections): wlmap committing each webhook with its job
             to SQLite (WAL, synchronous=FULL) before the 2xx, vs a bare starlette endpoint that only checks
             the signature. Same uvicorn settings, same event loop (uvloop), same load generator. Target >= 0.8x.
2. latency   acknowledgement latency at a steady 200 webhooks/s (open loop, counted from when each request was
             due), wlmap running its mapping on every webhook meanwhile, vs the bare endpoint. Target p99 < 20 ms.
3. e2e       2,000 signed webhooks at concurrency 50, GraphQL and target each answering after 20 ms: time from
             the first send until the fake target has seen every effect, vs the hand-written starlette
             middleware (no durability; a semaphore bounds its background jobs) on httpx and on aiohttp,
             and vs wlmap itself on httpx's own transport (httpcore) instead of aiohttp (bench/runners.py).
             Targets: >= 1.0x the middleware's events/s, none lost; server CPU per event <= 1.5x the middleware's.
4. memory    peak resident memory (VmHWM) of the largest server process during its e2e run. Target < 100 MB.

Everything runs on 127.0.0.1 in subprocesses (fakes, server under test); the load generator is this process.
Each server is started fresh with a new store; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]

import loadgen  # noqa: E402
from fakes import SNOW_AUTH, TOKEN  # noqa: E402

MAPPING = """\
version: 1
name: bench-scope-to-target
trigger:
  topics: [scenario_session/completed]
connections:
  scope:
    url: "{{ env.BENCH_SCOPE_URL }}"
    headers:
      Authorization: "Token token={{ env.BENCH_SCOPE_TOKEN }}"
  target:
    base_url: "{{ env.BENCH_TARGET_URL }}"
    auth:
      basic:
        username: "{{ env.BENCH_USER }}"
        password: "{{ env.BENCH_PASSWORD }}"
query:
  connection: scope
  graphql: |
    query ($id: ID!) { node(id: $id) { ... on ScenarioSession { id state duration endedAt externalData } } }
  variables:
    id: "{{ event.resource_id }}"
extract:
  node: result.node.id
  state: result.node.state
  seconds: result.node.duration
steps:
  - name: update-thing
    connection: target
    method: PATCH
    path: "/api/things/{{ node }}"
    json:
      state: "{{ state }}"
      minutes: "{{ (seconds / 60) | round(1) }}"
    expect: [200]
"""


# ------------------------------------------------------------------------------------------- processes


@dataclass
class Server:
    """A server under test in a subprocess: its URL (ready to take requests) and its process."""

    name: str
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in kB, from /proc/<pid>/status: the largest of the server's processes (a supervised
        wlmap has a listener and worker processes under the one started)."""
        found: dict[str, int] = {}
        for pid in tree(self.proc.pid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        found[key] = max(found.get(key, 0), int(value.split()[0]))
        return found

    def cpu(self) -> float:
        """User + system CPU seconds the server's processes have used so far (the one started and its children)."""
        return sum(cpu_seconds(pid) for pid in tree(self.proc.pid))

    def stop(self) -> str:
        """SIGTERM, wait, and the process's output."""
        terminate(self.proc)
        return self.log.read_text(errors="replace")


def start(
    name: str, command: Sequence[str], workdir: Path, env: dict[str, str] | None = None, ready: str | None = None
) -> Server:
    """Start `command`; the URL comes from its `ready URL` line, or is `ready` once /healthz answers."""
    log = workdir / f"{name}.log"
    out = log.open("w")
    proc = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=workdir, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
        if ready is None:
            for line in log.read_text().splitlines():
                if line.startswith("ready "):
                    return Server(name, line.split()[1], proc, log)
        else:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{ready}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return Server(name, ready, proc, log)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start:\n{log.read_text()}")


def tree(pid: int) -> list[int]:
    """`pid` and every process under it (from /proc/<pid>/task/*/children)."""
    found, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                waiting += [int(child) for child in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait up to 30 s; SIGKILL if it is still there."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(mappings: Path, store: Path | str, port: int, *options: str) -> list[str]:
    """`wlmap run --serve` as every bench starts it: these mappings, this store and port, then `options`."""
    serve = [sys.executable, "-m", "mapper.cli", "run", "--serve"]
    return [*serve, "--mappings", str(mappings), "--store", str(store), "--port", str(port), *options]


def service_env(fakes: str) -> dict[str, str]:
    """The environment of a wlmap whose bench mapping asks and writes to `fakes` (bench/fakes.py)."""
    return {
        "WLMAP_WEBHOOK_SECRETS": loadgen.SECRET,
        "BENCH_SCOPE_URL": f"{fakes}/api/v3/graphql",
        "BENCH_SCOPE_TOKEN": TOKEN,
        "BENCH_TARGET_URL": fakes,
        "BENCH_USER": "bench",
        "BENCH_PASSWORD": "bench-password",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)]),
    }


def get_json(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return dict(json.loads(answer.read()))


def post(url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5):
        pass


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def bare(workdir: Path) -> Server:
    return start("bare", [sys.executable, str(BENCH / "middleware.py"), "--mode", "verify"], workdir)


def middleware(workdir: Path, fakes: str, client: str, concurrency: int) -> Server:
    return start(
        f"middleware-{client}",
        [
            sys.executable,
            str(BENCH / "middleware.py"),
            "--mode",
            "forward",
            "--client",
            client,
            "--upstream",
            fakes,
            "--concurrency",
            str(concurrency),
        ],
        workdir,
    )


def wlmap(workdir: Path, fakes: str, workers: int | None, runner: str | None, extra: Sequence[str] = ()) -> Server:
    """`wlmap run --serve` with the bench mapping, on a new store in its own folder."""
    home = Path(tempfile.mkdtemp(prefix="wlmap-", dir=workdir))
    (home / "mappings").mkdir()
    (home / "mappings" / "bench.yaml").write_text(MAPPING)
    port = free_port()
    command = serve_command(
        home / "mappings",
        home / "wlmap.db",
        port,
        *([] if workers is None else ["--workers", str(workers)]),
        "--log-level",
        "WARNING",
        *extra,
    )
    if runner:
        command += ["--runner", runner]
    env = service_env(fakes)
    assert SNOW_AUTH.endswith("YmVuY2g6YmVuY2gtcGFzc3dvcmQ=")  # the fake target expects these credentials
    server = start("wlmap", command, home, env, ready=f"http://127.0.0.1:{port}")
    server.store = home / "wlmap.db"  # type: ignore[attr-defined]
    return server


def job_counts(store: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as conn:
        return {status: count for status, count in conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")}


# --------------------------------------------------------------------------------------------- measures


def closed(url: str, count: int, concurrency: int) -> loadgen.Result:
    return asyncio.run(loadgen.closed_loop(f"{url}/webhooks", loadgen.prepared(f"{url}/webhooks", count), concurrency))


def opened(url: str, rate: float, seconds: float) -> loadgen.Result:
    requests = loadgen.prepared(f"{url}/webhooks", int(rate * seconds))
    return asyncio.run(loadgen.open_loop(f"{url}/webhooks", requests, rate))


@dataclass
class EndToEnd:
    name: str
    events: int
    sent_in: float  # seconds until every webhook was acknowledged
    done_in: float  # seconds until the target had seen every effect (inf: not all within the time limit)
    effects: int
    repeats: int
    refused: int  # webhooks not acknowledged with a 2xx
    peak_rss_kb: int
    rss_kb: int
    jobs: dict[str, int] | None = None  # wlmap only: jobs by status afterwards
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)  # CPU seconds during the run: server, fakes, load generator

    @property
    def rate(self) -> float:
        return self.events / self.done_in if self.done_in else 0.0

    @property
    def cpu_per_event(self) -> float:
        """Server CPU milliseconds per event."""
        return self.cpu[0] / self.events * 1000


def end_to_end(server: Server, fakes: Server, count: int, concurrency: int, limit: float) -> EndToEnd:
    """Send `count` webhooks; wait until the target has seen `count` distinct effects (or `limit` seconds)."""
    post(f"{fakes.url}/reset")
    url = f"{server.url}/webhooks"
    requests = loadgen.prepared(url, count)
    peak = 0
    cpu_before = (server.cpu(), fakes.cpu(), cpu_seconds(os.getpid()))

    async def drive() -> tuple[loadgen.Result, float, float]:
        started = time.perf_counter()
        sending = asyncio.create_task(loadgen.closed_loop(url, requests, concurrency, timeout=limit))
        done_at = float("inf")
        while time.perf_counter() - started < limit:
            await asyncio.sleep(0.02)
            nonlocal peak
            peak = max(peak, server.memory().get("VmRSS", 0))
            stats = await asyncio.to_thread(get_json, f"{fakes.url}/stats")
            if stats["effects"] >= count:
                done_at = time.perf_counter() - started
                break
        sent = await sending
        return sent, sent.elapsed, done_at

    sent, sent_in, done_in = asyncio.run(drive())
    cpu = (server.cpu() - cpu_before[0], fakes.cpu() - cpu_before[1], cpu_seconds(os.getpid()) - cpu_before[2])
    time.sleep(0.3)  # a late repeat of an effect would show now
    stats = get_json(f"{fakes.url}/stats")
    memory = server.memory()
    return EndToEnd(
        server.name,
        count,
        sent_in,
        done_in,
        int(stats["effects"]),
        int(stats["repeats"]),
        count - sent.ok,
        memory.get("VmHWM", peak),
        peak,
        cpu=cpu,
    )


# ---------------------------------------------------------------------------------------------- report


WLMAP_ACK = "wlmap (verify, commit with its job, then 2xx)"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke run, ~40 s)")
    parser.add_argument("--only", default="ack,latency,e2e", help="comma-separated: ack, latency, e2e")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="wlmap --workers (default: wlmap's own), and the middleware's semaphore (default 50)",
    )
    parser.add_argument(
        "--processes", default="0,default", help="wlmap --processes settings to measure (`default`: wlmap's own)"
    )
    parser.add_argument(
        "--peers", default="httpx,aiohttp", help="middleware clients to compare against (httpx, aiohttp, httpx-aiohttp)"
    )
    parser.add_argument(
        "--stacks",
        default="httpcore",
        help="wlmap also run with these client stacks (bench/runners.py factories), for the ratio",
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--wlmap-arg", action="append", default=[], help="extra argument for wlmap run --serve")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="FILE",
        help="record the wlmap process of the e2e run with py-spy (collapsed stacks into FILE)",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    settings = [None if p == "default" else int(p) for p in args.processes.split(",") if p]
    summary: list[tuple[str, str, str, str, str]] = []  # benchmark, wlmap, baseline, ratio, target
    shown = "its default" if args.workers is None else str(args.workers)
    print(f"service_load: {machine()}, python {sys.version.split()[0]}, wlmap --workers {shown}")
    with tempfile.TemporaryDirectory(prefix="wlmap-bench-") as tmp:
        work = Path(tmp)
        with running(start("fakes", [sys.executable, str(BENCH / "fakes.py"), "--latency", "0.02"], work)) as fk:

            def service(processes: int | None, workers: int | None = None, runner: str | None = None) -> Server:
                extra = [*args.wlmap_arg]
                if processes is not None:
                    extra += ["--processes", str(processes)]
                count = args.workers if workers is None else workers
                return wlmap(work, fk.url, count, runner, extra)

            if "ack" in only:
                acks(args, settings, service, work, summary)
            if "latency" in only:
                latency(args, settings, service, work, summary)
            if "e2e" in only:
                e2e(args, settings, service, work, fk, summary)
    print(f"\nafter: {machine()}\n")
    print("| benchmark | wlmap | baseline (same run) | ratio | target |\n|---|---|---|---|---|")
    for row in summary:
        print("| " + " | ".join(row) + " |")


def named(processes: int | None) -> str:
    return "wlmap --processes " + ("(default)" if processes is None else str(processes))


Summary = list[tuple[str, str, str, str, str]]


def acks(args: Any, settings: list[int | None], service: Any, work: Path, summary: Summary) -> None:
    count = 2000 if args.quick else 6000
    print(f"\n1. acknowledged webhooks/s, closed loop, 50 connections, {count} webhooks each (best of 2, interleaved)")
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}  # server CPU ms per acknowledged webhook, lowest of the rounds
    names = ["bare", *(named(p) for p in settings)]
    for _ in range(2):
        with running(bare(work)) as server:
            closed(server.url, 300, 50)  # warm-up
            before = server.cpu()
            result = closed(server.url, count, 50)
            best["bare"] = max(best.get("bare", 0.0), result.ok / result.elapsed)
            cpu["bare"] = min(cpu.get("bare", 1e9), (server.cpu() - before) / result.ok * 1000)
        for processes in settings:
            name = named(processes)
            with running(service(processes, workers=0)) as server:  # nothing claims: the listener alone
                closed(server.url, 300, 50)
                before = server.cpu()
                result = closed(server.url, count, 50)
                best[name] = max(best.get(name, 0.0), result.ok / result.elapsed)
                cpu[name] = min(cpu.get(name, 1e9), (server.cpu() - before) / result.ok * 1000)
                assert result.ok == count, result.statuses
    for name in names:
        label = "bare starlette endpoint (verify only)" if name == "bare" else f"{name}: {WLMAP_ACK}"
        print(f"   {label:70s} {best[name]:7.0f} /s, server CPU {cpu[name]:.3f} ms per webhook")
    for name in names[1:]:
        ratio = best[name] / best["bare"]
        print(f"   {name}: {ratio:.2f}x the bare endpoint (target >= 0.8x)")
        summary.append(
            (
                f"acks/s, closed loop, {name}",
                f"{best[name]:.0f}/s",
                f"{best['bare']:.0f}/s (bare)",
                f"{ratio:.2f}x",
                ">= 0.8x",
            )
        )


def latency(args: Any, settings: list[int | None], service: Any, work: Path, summary: Summary) -> None:
    seconds = 5 if args.quick else 20
    print(f"\n2. acknowledgement latency, open loop at 200 webhooks/s for {seconds} s")
    rows = []
    with running(bare(work)) as server:
        rows.append(("bare starlette endpoint", opened(server.url, 200, seconds)))
    for processes in settings:
        with running(service(processes)) as server:
            rows.append((f"{named(processes)}, running every mapping", opened(server.url, 200, seconds)))
    for name, result in rows:
        print(
            f"   {name:50s} p50 {ms(result.percentile(50))}, p99 {ms(result.percentile(99))}, "
            f"max {ms(max(result.latencies))}; {result.ok}/{len(result.latencies)} 2xx, "
            f"{result.errors} errors, {result.connections} connections"
        )
    base = rows[0][1].percentile(99)
    for name, result in rows[1:]:
        ours = result.percentile(99)
        print(f"   {name}: p99 {ours / base:.2f}x the bare endpoint's (target: p99 < 20 ms)")
        summary.append(
            (
                f"p99 ack at 200/s, {name.split(',')[0]}",
                ms(ours),
                f"{ms(base)} (bare)",
                f"{ours / base:.2f}x",
                "< 20 ms",
            )
        )


def e2e(args: Any, settings: list[int | None], service: Any, work: Path, fk: Server, summary: Summary) -> None:
    events = 500 if args.quick else args.events
    semaphore = 50 if args.workers is None else args.workers
    print(
        f"\n3. end to end: {events} webhooks, concurrency 50, GraphQL 20 ms + target 20 ms; "
        f"middleware semaphore {semaphore}"
    )
    results = []
    for client in [peer for peer in args.peers.split(",") if peer]:
        with running(middleware(work, fk.url, client, semaphore)) as server:
            results.append(end_to_end(server, fk, events, 50, limit=90))
    peers = len(results)
    for stack in [stack for stack in args.stacks.split(",") if stack]:
        with running(service(0, runner=f"runners:{stack.replace('-', '_')}")) as server:
            found = end_to_end(server, fk, events, 50, limit=90)
            found.name = f"wlmap --processes 0 on {stack}"
            found.jobs = job_counts(server.store)  # type: ignore[attr-defined]
            results.append(found)
    ours = []
    for processes in settings:
        with running(service(processes)) as server, profiled(server, args.profile):
            found = end_to_end(server, fk, events, 50, limit=90)
            time.sleep(0.5)
            found.name = named(processes)
            found.jobs = job_counts(server.store)  # type: ignore[attr-defined]
            results.append(found)
            ours.append(found)
    for r in results:
        lost = r.events - r.effects
        print(
            f"   {r.name:36s} {r.rate:6.0f} events/s  all effects in {r.done_in:5.2f} s (acks in "
            f"{r.sent_in:4.2f} s); lost {lost}, repeated {r.repeats}, refused {r.refused}"
            f"{'' if r.jobs is None else f', jobs {r.jobs}'}"
        )
        print(
            f"   {'':36s} CPU: server {r.cpu[0]:.2f} s ({r.cpu_per_event:.2f} ms/event), "
            f"fakes {r.cpu[1]:.2f} s, load generator {r.cpu[2]:.2f} s; peak RSS of a process "
            f"{r.peak_rss_kb / 1024:.1f} MB"
        )
    for mine in ours:
        for peer in results[:peers]:
            print(
                f"   {mine.name} / {peer.name}: {mine.rate / peer.rate:.2f}x events/s, "
                f"{mine.cpu_per_event / peer.cpu_per_event:.2f}x CPU per event"
            )
            summary.append(
                (
                    f"e2e events/s, {mine.name} vs {peer.name}",
                    f"{mine.rate:.0f}/s",
                    f"{peer.rate:.0f}/s",
                    f"{mine.rate / peer.rate:.2f}x",
                    ">= 1.0x, none lost" + ("" if mine.effects == mine.events and not mine.repeats else " (MISSED)"),
                )
            )
            summary.append(
                (
                    f"server CPU/event, {mine.name} vs {peer.name}",
                    f"{mine.cpu_per_event:.2f} ms",
                    f"{peer.cpu_per_event:.2f} ms",
                    f"{mine.cpu_per_event / peer.cpu_per_event:.2f}x",
                    "<= 1.5x",
                )
            )
        summary.append(
            (
                f"peak RSS of a process, {mine.name}",
                f"{mine.peak_rss_kb / 1024:.0f} MB",
                f"{results[0].peak_rss_kb / 1024:.0f} MB ({results[0].name})",
                f"{mine.peak_rss_kb / results[0].peak_rss_kb:.2f}x",
                "< 100 MB",
            )
        )


@contextlib.contextmanager
def profiled(server: Server, output: str | None) -> Iterator[None]:
    """py-spy (`pip install --target /tmp/pyspy py-spy`; PY_SPY names the binary) on the server meanwhile."""
    if output is None:
        yield
        return
    command = [
        os.environ.get("PY_SPY", "/tmp/pyspy/bin/py-spy"),
        "record",
        "--pid",
        str(server.proc.pid),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        output,
        "--nonblocking",
        *os.environ.get("PY_SPY_ARGS", "").split(),
    ]  # e.g. PY_SPY_ARGS=--gil
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(30)


if __name__ == "__main__":
    main()
