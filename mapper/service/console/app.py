"""The console's routes: log in, events, one event, the actions, mappings (with a dry run) and health.

Every page needs a session; every POST needs the session's CSRF token (403 otherwise, nothing done). Routes are
explicit and never redirected by the router (no trailing-slash redirects, whose Location comes from the Host
header); every redirect is a path of the console. The store is read in threads, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mapper.events import normalise
from mapper.language.plan import Plan
from mapper.service import actions, history
from mapper.service.console import auth
from mapper.service.console.render import HEADERS, STATIC, page
from mapper.service.mappings import Mappings
from mapper.service.operations import STATUSES, Filters, OpsError, events_page, parse_id
from mapper.service.store import EventQuery, NotFound, Store, StoreError, run_blocking

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


class Console:
    """The console's handlers over `Parts`; `app()` is its ASGI application (mounted at BASE)."""

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

    # ------------------------------------------------------------------------------ events

    async def events(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        params = request.query_params
        chosen = {
            name: params.get(name, "").strip() for name in ("status", "mapping", "resource", "since", "until", "text")
        }
        problem = ""
        try:
            filters = Filters(
                status=chosen["status"] or None,
                mapping=chosen["mapping"] or None,
                resource=chosen["resource"] or None,
                since=_local_time(chosen["since"], "From"),
                until=_local_time(chosen["until"], "To"),
                text=chosen["text"] or None,
            )
            found = await self.blocking(
                lambda: events_page(self.parts.store, filters, older=params.get("older"), limit=PAGE)
            )
        except OpsError as exc:
            problem, found = str(exc), None
        query = {k: v for k, v in chosen.items() if v}
        return self.show(
            request,
            session,
            "events.html",
            title="Events",
            chosen=chosen,
            statuses=STATUSES,
            mappings=sorted(self.parts.mappings.current()),
            page=found,
            problem=problem,
            older=f"{BASE}/events?{urlencode({**query, 'older': found.older})}" if found and found.older else "",
            newest=f"{BASE}/events?{urlencode(query)}" if params.get("older") else "",
            bulk=chosen["status"] in ("dead", "") and not chosen["resource"] and not chosen["text"],
        )

    async def event(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        ident = request.path_params["ident"]
        try:
            kind, number = parse_id(ident)
            if kind == "delivery":
                view: Any = await self.blocking(lambda: history.delivery_view(self.parts.store, number))
                now_passed = self._passed_now(view.delivery.body, view.delivery.headers) if view.delivery.body else ()
                return self.show(
                    request, session, "delivery.html", title=f"Webhook d{number}", view=view, now_passed=now_passed
                )
            view = await self.blocking(lambda: history.job_view(self.parts.store, number))
        except (OpsError, NotFound) as exc:
            return self.show(request, session, "refused.html", 404, title="Not found", message=str(exc))
        asked = any("waiting for the service" in h.what for h in view.history)
        due = view.job.status == "retry" and view.job.next_attempt_at <= self.parts.store.clock()  # retried now
        refresh = asked or due or view.job.status in ("pending", "running")
        return self.show(request, session, "job.html", title=f"Job {number}", view=view, refresh=refresh)

    def _passed_now(self, body: bytes, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Why each mapping in force would pass on this webhook today (or that it matches)."""
        from mapper.run.matching import match

        event = normalise(body, dict(headers))
        return [(name, match(plan, event)[1]) for name, plan in sorted(self.parts.mappings.current().items())]

    # ------------------------------------------------------------------------------ actions

    async def act(self, request: Request) -> Response:
        answer = await self.posted(request)
        if isinstance(answer, Response):
            return answer
        session, _ = answer
        ident, verb = request.path_params["ident"], request.path_params["verb"]
        store = self.parts.store
        try:
            if verb == "replay":
                asked = await self.blocking(lambda: actions.ask_replay(store, [parse_id(ident)], session.who))
                if asked[0].problem:
                    session.flash.append(f"Not replayed: {asked[0].problem}")
                else:
                    session.flash.append("Replay asked for: the service runs it in a moment.")
                    self.parts.wake()
            elif verb == "retry":
                session.flash.append(await self.blocking(lambda: actions.retry_now(store, ident, session.who)))
            elif verb == "cancel":
                session.flash.append(await self.blocking(lambda: actions.cancel(store, ident, session.who)))
            else:
                return self.show(request, session, "refused.html", 404, title="Not found", message=f"no action {verb}")
        except (OpsError, StoreError) as exc:
            session.flash.append(f"Not done: {exc}")
        return RedirectResponse(f"{BASE}/events/{ident}", 303, headers=HEADERS)

    async def bulk(self, request: Request) -> Response:
        """Replay several jobs: the ticked ones, or every dead job of a mapping received since a time. Shows what
        would be replayed and asks to confirm; `confirm` does it."""
        answer = await self.posted(request)
        if isinstance(answer, Response):
            return answer
        session, form = answer
        ids = [i for i in form.get("id", []) if i]
        mapping = (form.get("mapping") or [""])[0] or None
        since_text = (form.get("since") or [""])[0]
        store = self.parts.store
        try:
            since = _local_time(since_text, "From")
            if ids:
                chosen = [parse_id(i) for i in ids]
                what = f"the {len(chosen)} event(s) you ticked"
            else:
                since_iso = datetime.fromtimestamp(since, UTC).isoformat() if since is not None else None
                chosen = await self.blocking(
                    lambda: actions.targets(store, status="dead", since=since_iso, mapping=mapping)
                )
                what = (
                    "every dead job"
                    + (f" of mapping {mapping}" if mapping else "")
                    + (f" received since {history.when(since)}" if since is not None else "")
                )
        except OpsError as exc:
            session.flash.append(f"Not done: {exc}")
            return RedirectResponse(f"{BASE}/events", 303, headers=HEADERS)
        if not (form.get("confirm") or [""])[0]:
            return self.show(request, session, "confirm.html", title="Replay?", what=what, chosen=chosen, form=form)
        asked = await self.blocking(lambda: actions.ask_replay(store, chosen, session.who))
        refused = [a for a in asked if a.problem]
        session.flash.append(f"Asked the service to replay {len(asked) - len(refused)} event(s).")
        session.flash += [f"{a.source}: not replayed: {a.problem}" for a in refused[:10]]
        self.parts.wake()
        return RedirectResponse(f"{BASE}/events", 303, headers=HEADERS)

    # ------------------------------------------------------------------------------ mappings, health

    async def mappings(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        store = self.parts.store
        hour = await self.blocking(lambda: store.made_since(store.clock() - 3600))
        day = await self.blocking(lambda: store.made_since(store.clock() - 86400))
        dead = await self.blocking(store.dead_by_mapping)
        plans = sorted(self.parts.mappings.current().values(), key=lambda plan: plan.name)
        return self.show(
            request,
            session,
            "mappings.html",
            title="Mappings",
            plans=plans,
            loaded_at=self.parts.mappings.loaded_at,
            refused=self.parts.mappings.refused,
            hour=hour,
            day=day,
            dead=dead,
            dry_run=self.parts.dry_run is not None,
        )

    async def dry_run(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        name = request.path_params["name"]
        plan = self.parts.mappings.current().get(name)
        ident = request.query_params.get("event", "").strip()
        if plan is None or self.parts.dry_run is None:
            return self.show(
                request, session, "refused.html", 404, title="Not found", message=f"no mapping named `{name}` is loaded"
            )
        store = self.parts.store
        try:
            kind, number = parse_id(ident)
            if kind == "job":
                number = (await self.blocking(lambda: store.job(number))).job.delivery
            delivery = await self.blocking(lambda: store.delivery(number))
            if not delivery.body:
                raise OpsError(f"d{number} is a duplicate: its body is kept with d{delivery.duplicate_of}")
            result = await self.parts.dry_run(plan, delivery.body, dict(delivery.headers))
        except (OpsError, StoreError) as exc:
            session.flash.append(f"No dry run: {exc}")
            return RedirectResponse(f"{BASE}/mappings", 303, headers=HEADERS)
        from mapper.service import timeline

        shown = timeline.read(result.trace) if result.trace is not None and timeline.is_trace(result.trace) else None
        return self.show(
            request,
            session,
            "dry_run.html",
            title=f"Dry run of {name}",
            plan=plan,
            ident=ident,
            result=result,
            timeline=shown,
        )

    async def health(self, request: Request) -> Response:
        session = self.session(request)
        if session is None:
            return self.to_login(request)
        store = self.parts.store

        def look() -> dict[str, Any]:
            found: dict[str, Any] = {"problem": None}
            try:
                store.ping()
            except StoreError as exc:
                found["problem"] = str(exc)
            try:
                found["counts"] = store.counts()
                found["oldest"] = store.oldest_pending()
                last = store.jobs_page(EventQuery(statuses=("dead",)), None, 1).rows
                found["last_dead"] = last[0] if last else None
            except StoreError as exc:
                found["problem"] = found["problem"] or str(exc)
                found.update(counts={}, oldest=None, last_dead=None)
            found["clock"] = store.clock()
            return found

        looked = await self.blocking(look)
        return self.show(
            request,
            session,
            "health.html",
            title="Health",
            where=self.parts.where,
            role=self.parts.role,
            loaded=len(self.parts.mappings.current()),
            refused=self.parts.mappings.refused,
            **looked,
        )

    # ------------------------------------------------------------------------------ the app

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{BASE}/events", 303, headers=HEADERS)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return Response("not found", 404, headers=HEADERS)
        return FileResponse(
            STATIC / name, media_type=STATIC_FILES[name], headers={**HEADERS, "Cache-Control": "max-age=300"}
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/events/{ident}", self.event, methods=["GET"]),
            Route("/events/{ident}/{verb}", self.act, methods=["POST"]),
            Route("/replay", self.bulk, methods=["POST"]),
            Route("/mappings", self.mappings, methods=["GET"]),
            Route("/mappings/{name}/dry-run", self.dry_run, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
        ]

    def app(self) -> Starlette:
        async def not_found(request: Request, exc: Exception) -> Response:
            return Response("not found", 404, media_type="text/plain", headers=HEADERS)

        made = Starlette(routes=self.routes(), exception_handlers={404: not_found, 405: not_found})
        made.router.redirect_slashes = False  # its Location would come from the Host header
        return made


def _local_time(text: str, label: str) -> float | None:
    """A time from a form (datetime-local, read as UTC), or None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise OpsError(f"{label} {text!r} is not a date and time, e.g. 2024-05-01T10:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def routes(parts: Parts) -> list[BaseRoute]:
    """The console's routes to put in front of an app: /ui and everything under it."""
    from starlette.routing import Mount

    console = Console(parts)

    async def to_console(request: Request) -> Response:
        return RedirectResponse(f"{BASE}/events", 303, headers=HEADERS)

    return [Route(BASE, to_console), Mount(BASE, app=console.app())]
