"""The console's mappings page (with a dry run of a stored webhook) and its health page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mapper.service.console.core import BASE, Pages
from mapper.service.console.render import HEADERS
from mapper.service.operations import OpsError, parse_id
from mapper.service.store import EventQuery, StoreError


class MappingPages(Pages):
    """The loaded mappings, a dry run of one against a stored webhook, and the service's health."""

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
