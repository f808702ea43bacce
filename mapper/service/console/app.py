"""The console's application: the routes of its pages (core: log in; event_pages; mapping_pages) at /ui.

Routes are explicit and never redirected by the router (no trailing-slash redirects, whose Location comes from
the Host header); every redirect is a path of the console.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mapper.service.console.core import BASE, STATIC_FILES, DryRunResult, Given, Parts
from mapper.service.console.event_pages import EventPages
from mapper.service.console.mapping_pages import MappingPages
from mapper.service.console.render import HEADERS, STATIC

__all__ = ["BASE", "Console", "DryRunResult", "Given", "Parts", "routes"]


class Console(EventPages, MappingPages):
    """The console's handlers over `Parts`; `app()` is its ASGI application (mounted at BASE)."""

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


def routes(parts: Parts) -> list[BaseRoute]:
    """The console's routes to put in front of an app: /ui and everything under it."""
    from starlette.routing import Mount

    console = Console(parts)

    async def to_console(request: Request) -> Response:
        return RedirectResponse(f"{BASE}/events", 303, headers=HEADERS)

    return [Route(BASE, to_console), Mount(BASE, app=console.app())]
