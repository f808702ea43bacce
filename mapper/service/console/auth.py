"""Who may use the console: the credential from the environment, sessions, CSRF tokens and a brake on guessing.

The credential is a user and password, or a token (mapper/cli reads them from the environment and passes them
down); both are compared in constant time. A login makes a session: a random id in an HttpOnly, SameSite=Strict
cookie (Secure when the request came over TLS), kept in this process only, so a restart logs everyone out.
Every form that changes something carries the session's CSRF token, compared in constant time too. The login
form itself is tied to a short-lived cookie the same way (a double-submit token), so that no other site can log
a browser in.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

SESSION_COOKIE: Final = "wlmap_console"
LOGIN_COOKIE: Final = "wlmap_console_login"
IDLE: Final = 8 * 3600.0  # seconds a session lasts without a request
LONGEST: Final = 24 * 3600.0  # seconds a session lasts at most
FAILURES: Final = 10  # failed logins a minute, all callers together, before the console stops trying
TOKEN_USER: Final = "token"  # who a token login is, in the history


@dataclass(frozen=True)
class Credentials:
    """A user and password, or a token; the console is off when neither is complete."""

    user: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @property
    def configured(self) -> bool:
        return bool((self.user and self.password) or self.token)

    @property
    def uses_password(self) -> bool:
        return bool(self.user and self.password)

    def check(self, user: str, password: str, token: str) -> str | None:
        """Who logged in, or None. Every comparison runs whatever the input, in constant time."""
        user_ok = same(user, self.user) & same(password, self.password) & self.uses_password
        token_ok = same(token, self.token) & bool(self.token)
        if user_ok:
            return self.user
        return TOKEN_USER if token_ok else None


def same(given: str, expected: str) -> bool:
    """Equal, compared in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    who: str
    csrf: str
    started: float
    seen: float
    flash: list[str] = field(default_factory=list)  # notices shown once, on the next page


class Sessions:
    """The logged-in sessions of this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._failures: list[float] = []

    def start(self, who: str) -> str:
        """A new session for `who`; its id (the cookie's value)."""
        now = self.clock()
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_old(now)
            self._sessions[key] = Session(who, secrets.token_urlsafe(32), now, now)
        return key

    def get(self, key: str | None) -> Session | None:
        if not key:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > IDLE or now - session.started > LONGEST:
                del self._sessions[key]
                return None
            session.seen = now
            return session

    def end(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key or "", None)

    def _drop_old(self, now: float) -> None:
        for key, session in list(self._sessions.items()):
            if now - session.seen > IDLE or now - session.started > LONGEST:
                del self._sessions[key]

    def failed(self) -> None:
        with self._lock:
            self._failures.append(self.clock())

    def guessing(self) -> bool:
        """Too many failed logins in the last minute: refuse logins for a while."""
        now = self.clock()
        with self._lock:
            self._failures = [at for at in self._failures if now - at < 60.0]
            return len(self._failures) >= FAILURES


def csrf_ok(session: Session, given: str) -> bool:
    return bool(given) and same(given, session.csrf)


def safe_next(path: str | None, base: str) -> str:
    """Where to go after logging in: a path of the console only (never another site)."""
    if path and path.startswith(base + "/") and not path.startswith("//") and "\\" not in path:
        return path
    return base + "/events"
