"""The console's event pages and actions: the events list, one event's history, replay/retry/cancel, bulk replay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mapper.events import normalise
from mapper.service import actions, history
from mapper.service.console.core import BASE, PAGE, Pages
from mapper.service.console.render import HEADERS
from mapper.service.operations import STATUSES, Filters, OpsError, events_page, parse_id
from mapper.service.store import NotFound, StoreError


class EventPages(Pages):
    """The events list, one event, and the actions on them."""

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


def _local_time(text: str, label: str) -> float | None:
    """A time from a form (datetime-local, read as UTC), or None when empty."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise OpsError(f"{label} {text!r} is not a date and time, e.g. 2024-05-01T10:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
