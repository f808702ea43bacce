"""The console's common ground: its parts, sessions and forms (CSRF checked), logging in and out.

Every page needs a session; every POST needs the session's CSRF token (403 otherwise, nothing done). The store
is read in threads, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mapper.language.plan import Plan
from mapper.service.console import auth
from mapper.service.console.render import HEADERS, page
from mapper.service.mappings import Mappings
from mapper.service.store import Store, run_blocking

T = TypeVar("T")
BASE: Final = "/ui"
MAX_FORM: Final = 64 * 1024  # bytes of a form (a bulk replay of a page of ids is far below)
PAGE: Final = 50
STATIC_FILES: Final = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True)
class DryRunResult:
    """A stored webhook run through a mapping with stand-ins answering: did it match, and the trace."""

    matched: bool
    why: str
    trace: Mapping[str, Any] | None
    unstubbed: tuple[str, ...] = ()


DryRun = Callable[[Plan, bytes, Mapping[str, str]], Awaitable[DryRunResult]]


@dataclass(frozen=True)
class Given:
    """What the command line hands the service for the console: the credential, and the dry run it can offer."""

    credentials: auth.Credentials
    dry_run: DryRun | None = None


@dataclass(frozen=True)
class Parts:
    """What the console works with, handed over by the service."""

    store: Store
    mappings: Mappings
    credentials: auth.Credentials
    wake: Callable[[], None] = lambda: None  # a replay was asked for: the service's desk looks at once
    dry_run: DryRun | None = None
    executor: Executor | None = None
    where: str = ""  # the store, described without a password
    role: str = "all"


class Pages:
    """Sessions, forms and logging in, over `Parts`; the page classes build on it."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.sessions = auth.Sessions()

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await run_blocking(self.parts.executor, fn)

    # ------------------------------------------------------------------------------ sessions

    def session(self, request: Request) -> auth.Session | None:
        return self.sessions.get(request.cookies.get(auth.SESSION_COOKIE))

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{BASE}/login?{urlencode({'next': target})}", 303, headers=HEADERS)

    def show(self, request: Request, session: auth.Session, name: str, status: int = 200, **values: Any) -> Response:
        flash, session.flash = session.flash, []
        return page(
            name,
            status,
            base=BASE,
            who=session.who,
            csrf=session.csrf,
            flash=flash,
            now=time.time(),
            **values,
        )

    async def form(self, request: Request) -> dict[str, list[str]]:
        body = await request.body()
        if len(body) > MAX_FORM:
            return {}
        found: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            found.setdefault(key, []).append(value)
        return found

    async def posted(self, request: Request) -> tuple[auth.Session, dict[str, list[str]]] | Response:
        """The session and form of a POST, or the answer when there is no session or no valid CSRF token."""
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        form = await self.form(request)
        if not auth.csrf_ok(session, (form.get("csrf") or [""])[0]):
            return self.show(
                request,
                session,
                "refused.html",
                403,
                title="Not done",
                message=(
                    "This form has expired or did not come from this console, so nothing was done. "
                    "Go back, reload the page and try again."
                ),
            )
        return session, form

    # ------------------------------------------------------------------------------ log in

    async def login_page(self, request: Request) -> Response:
        token = auth.new_token()
        response = page(
            "login.html",
            base=BASE,
            next=request.query_params.get("next", ""),
            login_token=token,
            password=self.parts.credentials.uses_password,
            token=bool(self.parts.credentials.token),
            error="",
        )
        self._cookie(response, request, auth.LOGIN_COOKIE, token, 600)
        return response

    async def login(self, request: Request) -> Response:
        form = await self.form(request)

        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        expected = request.cookies.get(auth.LOGIN_COOKIE, "")
        next_path = auth.safe_next(field("next"), BASE)
        error = ""
        if not expected or not auth.same(field("login_token"), expected):
            error = "The login form had expired. Please try again."
        elif self.sessions.guessing():
            error = "Too many failed logins in the last minute. Wait a minute, then try again."
        else:
            who = self.parts.credentials.check(field("user"), field("password"), field("token"))
            if who is not None:
                response = RedirectResponse(next_path, 303, headers=HEADERS)
                self._cookie(response, request, auth.SESSION_COOKIE, self.sessions.start(who), None)
                response.delete_cookie(auth.LOGIN_COOKIE, path=BASE)
                return response
            self.sessions.failed()
            error = "That did not match. Check the user name and password (or the token) and try again."
        token = auth.new_token()
        refused = page(
            "login.html",
            401,
            base=BASE,
            next=next_path,
            login_token=token,
            password=self.parts.credentials.uses_password,
            token=bool(self.parts.credentials.token),
            error=error,
        )
        self._cookie(refused, request, auth.LOGIN_COOKIE, token, 600)
        return refused

    async def logout(self, request: Request) -> Response:
        answer = await self.posted(request)
        if isinstance(answer, Response):
            return answer
        self.sessions.end(request.cookies.get(auth.SESSION_COOKIE))
        response = RedirectResponse(f"{BASE}/login", 303, headers=HEADERS)
        response.delete_cookie(auth.SESSION_COOKIE, path=BASE)
        return response

    def _cookie(self, response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=BASE,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",  # behind TLS (directly, or a proxy uvicorn trusts)
        )
