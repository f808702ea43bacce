"""The mappings in force: loaded at start, routed to, and swapped whole when the files change and stay valid."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mapper.errors import MappingError, Problem, as_text
from mapper.events import Event
from mapper.language import loader
from mapper.language.plan import Plan
from mapper.run.matching import Triggers, match
from mapper.service.collecting import Collecting
from mapper.service.store import NewJob

log = logging.getLogger("wlmap.service")

Stamp = tuple[tuple[str, int, int], ...]  # (file, mtime in ns, size) of every mapping file, sorted


def matches(plan: Plan, event: Event) -> bool:
    """Whether the plan's trigger wants the event (see `matching.match`); a `when` that fails is logged."""
    matched, why = match(plan, event)
    if not matched and why.startswith("trigger `when` could not"):
        log.warning("%s", why, extra={"event_id": event.delivery_id, "mapping": plan.name})
    return matched


def unset_variables(plans: Iterable[Plan], env: Mapping[str, str]) -> dict[str, list[str]]:
    """Each mapping that reads environment variables the service was not given, with their names."""
    unset = {plan.name: sorted(name for name in plan.env_names if name not in env) for plan in plans}
    return {name: names for name, names in sorted(unset.items()) if names}


def _is_unset(problem: Problem, unset: Mapping[str, list[str]]) -> bool:
    """A "variable not set" warning: those are summed up in one block instead, one line per mapping."""
    return problem.severity == "warning" and any(
        problem.message == loader.unset_message(name) for names in unset.values() for name in names
    )


def unset_block(unset: Mapping[str, list[str]], problems: Iterable[Problem] = ()) -> str:
    """One short block: every mapping that will fail until its variables are set, with their names (and a
    hint where a name looks misspelt)."""
    hints = {}
    for problem in problems:
        if problem.hint and problem.hint != loader.UNSET_HINT and problem.message.startswith("environment variable `"):
            hints[problem.message.split("`")[1]] = problem.hint
    width = max(len(name) for name in unset)
    lines = [f"environment variables not set; {_mappings(len(unset))} fail until they are:"]
    for mapping, names in unset.items():
        shown = ", ".join(f"{n} ({hints[n]})" if n in hints else n for n in names)
        lines.append(f"  {mapping.ljust(width)}  {shown}")
    return "\n".join(lines)


def _mappings(count: int) -> str:
    return "this mapping will" if count == 1 else f"these {count} mappings will"


class Mappings:
    """The mappings in force; swapped whole when the files change and the new set is valid."""

    def __init__(self, paths: Sequence[Path], env: Mapping[str, str]) -> None:
        self.paths, self.env = list(paths), env
        self._plans: dict[str, Plan] = {}
        self._triggers = Triggers(())
        self._stamp: Stamp | None = None
        self.collecting = Collecting()
        self.loaded_at = 0.0  # when the mappings in force were loaded (time.time())
        self.refused: tuple[str, ...] = ()  # the problems of the last version refused, until a valid one loads

    def current(self) -> Mapping[str, Plan]:
        return self._plans

    def route(self, event: Event, *, unsigned: bool = False) -> list[NewJob]:
        """A job for every mapping whose trigger matches the event (a collecting mapping's item, when it can);
        unsigned: only mappings that allow unsigned webhooks."""
        matched, failed = self._triggers.select(event, unsigned=unsigned)
        for plan, why in failed:
            log.warning("%s", why, extra={"event_id": event.delivery_id, "mapping": plan.name})
        return [
            NewJob(plan.name, event.resource_id, plan.file)
            if plan.collect is None
            else self.collecting.job(plan, event)
            for plan in matched
        ]

    def explain(self, event: Event) -> str:
        """Why each mapping in force passes on the event, and what normalising it noticed, as JSON (an ignored
        webhook keeps it: "why was my Call ignored?")."""
        why = {plan.name: match(plan, event)[1] for plan in self._plans.values()}
        return json.dumps({"mappings": why, "problems": list(event.problems)}, ensure_ascii=False)

    def _use(self, plans: Sequence[Plan]) -> None:
        self._plans = {plan.name: plan for plan in plans}
        self._triggers = Triggers(self._plans.values())

    def _files_stamp(self) -> Stamp:
        files, _ = loader.mapping_files(self.paths)
        stamp = []
        for file in files:
            with contextlib.suppress(OSError):
                info = file.stat()
                stamp.append((str(file), info.st_mtime_ns, info.st_size))
        return tuple(sorted(stamp))

    def load(self) -> None:
        """Load every mapping, or raise MappingError with every problem (at start-up)."""
        stamp = self._files_stamp()
        loaded = loader.load(self.paths, self.env)
        if loaded.errors:
            raise MappingError(loaded.problems)
        unset = unset_variables(loaded.plans, self.env)
        for problem in loaded.problems:
            if not _is_unset(problem, unset):
                log.warning("%s", as_text([problem]))
        if unset:
            log.warning("%s", unset_block(unset, loaded.problems))
        self._use(loaded.plans)
        self._stamp = stamp
        self.loaded_at = time.time()

    def reload_if_changed(self) -> bool:
        """Reload when a file changed; an invalid new version is reported and the previous set stays."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        loaded = loader.load(self.paths, self.env)
        if loaded.errors:
            log.error(
                "mappings changed but are not valid; the previous version keeps running:\n%s",
                as_text(loaded.problems),
            )
            self.refused = tuple(f"{problem.location}: {problem.message}" for problem in loaded.errors)
            return False
        self._use(loaded.plans)
        self.loaded_at, self.refused = time.time(), ()
        log.info("mappings reloaded: %s", ", ".join(sorted(self._plans)) or "none")
        return True
