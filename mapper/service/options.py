"""The service's options: every default and every environment variable name, written once.

`wlmap run --serve` (mapper/cli) takes one option per field of `ServiceOptions`, with these defaults, and
docs/operations.md shows the same figures (tests/test_service_options.py compares them). Only the command line
reads the environment: it hands the service the secrets, the store location and the mappings' `env` as values.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Environment variables (read by mapper/cli only).
SECRETS_ENV: Final = "WLMAP_WEBHOOK_SECRETS"  # comma-separated: "old,new" during a rotation, the newest last
STORE_ENV: Final = "WLMAP_STORE"  # the store when --store is not given (the service and the operator commands)
REQUIRE_SECRET_ENV: Final = "WLMAP_REQUIRE_SECRET"  # 1/true: like --require-secret (production)
LINKS_TOKEN_ENV: Final = "WLMAP_LINKS_TOKEN"  # with --links: the token that GET /links/... needs (not a webhook secret)
# The console (mapper/service/console): off unless a user and password, or a token, is set.
UI_USER_ENV: Final = "WLMAP_UI_USER"
UI_PASSWORD_ENV: Final = "WLMAP_UI_PASSWORD"
UI_TOKEN_ENV: Final = "WLMAP_UI_TOKEN"

# Where: the mappings, the store, the socket.
MAPPINGS: Final = "mappings"
STORE: Final = "wlmap.db"
HOST: Final = "127.0.0.1"
PORT: Final = 8080
WEBHOOK_PATH: Final = "/webhooks"
LINKS_PATH: Final = "/links"


class Role(enum.StrEnum):
    """What this process does: take webhooks and run jobs, only the one, or only the other."""

    all = "all"
    listener = "listener"  # webhooks only
    worker = "worker"  # jobs only (it still answers /healthz, /readyz and /metrics)


class SignatureEncoding(enum.StrEnum):
    base64 = "base64"
    hex = "hex"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# What this process does, and how many mapping runs at once (docs/operations.md, Sizing).
ROLES: Final = tuple(Role)
ROLE: Final = Role.all
# Runs at once per worker process. Measured end to end (bench/service_load.py --only e2e, 1,500-2,000 webhooks,
# GraphQL and target answering after 20 ms, 2 cores, 2 worker processes, 2026-12-04): 16 caps a process at
# ~170 events/s (345/s for two: each run waits ~45-90 ms), 32 reached 360-696/s, 50 392-526/s, 100 475-869/s:
# from 32 on the CPU bounds it, not the runs at once. 32 is the smallest that reaches that bound, and keeps the
# requests a throttled target (ServiceNow, SAP Gateway) sees at once lower than 50 or 100 would.
WORKERS: Final = 32
# Worker processes beside one listener process on the embedded SQLite store (0: everything in one process; on
# PostgreSQL `--role` splits the processes instead). Measured the same way with 50 runs each: one worker process
# 397-410 events/s, two 487-526/s, three (32 each) 428/s: two uses both cores of the machine measured; on a
# machine with more cores, one per core is the place to start (docs/operations.md, Sizing).
PROCESSES: Final = 2

# How webhooks are accepted.
SIGNATURE_HEADER: Final = "x-scope-hmac-sha256"
SIGNATURE_ENCODINGS: Final = tuple(SignatureEncoding)
SIGNATURE_ENCODING: Final = SignatureEncoding.base64
MAX_BODY: Final = 1024 * 1024  # bytes
UNSIGNED_FROM: Final[str | None] = None  # with --allow-unsigned: comma-separated networks; none: any address
# Without it, a listener given no secret makes one for a local run (mapper/cli/webhook_secret.py).
REQUIRE_SECRET: Final = False

# Connections (docs/operations.md, Connections): what a client that sends slowly, or not at all, may hold.
HEADER_TIMEOUT: Final = 10.0  # seconds for a request's head (request line and headers) to arrive
BODY_TIMEOUT: Final = 20.0  # seconds for its body to arrive once the head is in
KEEP_ALIVE: Final = 5  # seconds an idle keep-alive connection is kept between requests (uvicorn's default)
MAX_CONNECTIONS: Final = 1000  # open connections at most; past it the oldest idle one is closed
DEDUPE_WINDOW: Final = 300.0  # seconds in which an identical body without a delivery id is a duplicate

# The deep link endpoint (GET /links/<mapping>): off unless asked; requests per second, all callers together.
LINKS: Final = False
LINKS_RATE: Final = 10.0
LINKS_TOKEN_MIN: Final = 16  # characters

# The console: under /ui beside the webhook endpoint, unless --ui-port gives it a socket of its own.
UI_PATH: Final = "/ui"
UI_HOST: Final[str | None] = None  # with --ui-port: --host unless given
UI_PORT: Final[int | None] = None

# Timings of the workers and the store's upkeep, in seconds unless the name says otherwise.
LEASE: Final = 60.0
POLL: Final = 0.5
RUN_TIMEOUT: Final = 600.0
GRACE: Final = 10.0
RETENTION_DAYS: Final = 7.0
TRACE_BODY_MAX: Final = 64 * 1024  # bytes of each body (the query's answer, a request's) a stored trace keeps
RELOAD_INTERVAL: Final = 1.0  # between looks at the mapping files (not an option: a second is what people expect)
TIME_SCALE: Final = 1.0  # tests only: retry delays are divided by this

# Logs.
LOG_FORMAT: Final = LogFormat.text
LOG_LEVEL: Final = LogLevel.INFO

# The runner the workers call (tests name a stand-in: `module:factory`, built from the environment).
RUNNER: Final = "mapper.run.runner:Runner"

# Limits of the store: none on the SQLite file's size unless asked; PostgreSQL connections per process as the
# store sets them (store.postgres.MAX_CONNECTIONS, 10) unless asked.
STORE_MAX_MB: Final[float | None] = None
STORE_CONNECTIONS: Final[int | None] = None


class ServiceError(Exception):
    """The service cannot start with the options it was given; the message says why in plain words."""


@dataclass(frozen=True)
class ServiceOptions:
    """Everything `server.serve` takes: what `wlmap run --serve` was given, defaults for the rest."""

    mappings: tuple[Path, ...] = (Path(MAPPINGS),)
    store: str = STORE
    host: str = HOST
    port: int = PORT
    workers: int = WORKERS
    processes: int = PROCESSES
    role: str = ROLE
    path: str = WEBHOOK_PATH
    secrets: tuple[str, ...] = ()  # the webhook secrets (secrets_from(environment))
    require_secret: bool = REQUIRE_SECRET
    allow_unsigned: bool = False
    unsigned_from: str | None = UNSIGNED_FROM
    signature_header: str = SIGNATURE_HEADER
    signature_encoding: str = SIGNATURE_ENCODING
    max_body: int = MAX_BODY
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS
    dedupe_window: float = DEDUPE_WINDOW
    links: bool = LINKS
    links_rate: float = LINKS_RATE
    links_token: str = field(default="", repr=False)  # from LINKS_TOKEN_ENV (links_token_from(environment))
    ui_host: str | None = UI_HOST
    ui_port: int | None = UI_PORT
    retention_days: float = RETENTION_DAYS
    trace_body_max: int = TRACE_BODY_MAX
    lease: float = LEASE
    poll: float = POLL
    run_timeout: float = RUN_TIMEOUT
    grace: float = GRACE
    time_scale: float = TIME_SCALE
    reload_interval: float = RELOAD_INTERVAL
    runner: str = RUNNER
    log_format: str = LOG_FORMAT
    log_level: str = LOG_LEVEL
    store_max_mb: float | None = STORE_MAX_MB
    store_connections: int | None = STORE_CONNECTIONS
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # what mappings read as `env.NAME`

    @property
    def retention(self) -> float:
        """Seconds a finished delivery is kept."""
        return self.retention_days * 86400

    @property
    def store_max_bytes(self) -> int | None:
        return None if self.store_max_mb is None else int(self.store_max_mb * 1024 * 1024)

    @property
    def takes_webhooks(self) -> bool:
        return self.role in ("all", "listener")

    @property
    def runs_jobs(self) -> bool:
        return self.role in ("all", "worker")


def links_token_from(env: Mapping[str, str]) -> str:
    return env.get(LINKS_TOKEN_ENV, "").strip()


def secrets_from(env: Mapping[str, str]) -> tuple[str, ...]:
    """The webhook secrets in WLMAP_WEBHOOK_SECRETS (comma-separated: old and new during a rotation)."""
    return tuple(part.strip() for part in env.get(SECRETS_ENV, "").split(",") if part.strip())
