"""Cron expressions and time zones: checked in plain words at compile time, stepped through at run time.

`trigger: {schedule: "0 2 * * *"}` and `collect: {close: {at: ...}}` use the five-field Unix form (minute,
hour, day of month, month, day of week) or a shortcut such as `@daily`, in a time zone (UTC unless
`timezone:` names one). croniter (https://github.com/pallets-eco/croniter) reads and steps through them;
it is imported only when a mapping has a cron expression, so `wlmap validate` stays fast for the others.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any, NamedTuple

SHORTCUTS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# The fields of the Unix form, in order: their names and what each may hold, for messages.
FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of the month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of the week", "0-6 (0 and 7 are Sunday) or sun-sat"),
)
EXAMPLE = "e.g. `0 2 * * *` (every day at 02:00) or `*/15 8-17 * * mon-fri`"


class CronProblem(NamedTuple):
    """What is wrong with an expression, where in its text (offset, width), and what to write instead."""

    message: str
    hint: str
    offset: int = 0
    width: int = 1


class Cron(NamedTuple):
    """A checked cron expression in a time zone; times are seconds since the epoch (UTC)."""

    expression: str
    timezone: str = "UTC"

    def __str__(self) -> str:
        return self.expression if self.timezone == "UTC" else f"{self.expression} ({self.timezone})"

    def next_after(self, moment: float) -> float:
        """The first time strictly after `moment` that the expression names."""
        return float(_iterator(self.expression, moment, self.timezone).get_next(float))

    def previous(self, moment: float) -> float:
        """The last time strictly before `moment` that the expression names."""
        return float(_iterator(self.expression, moment, self.timezone).get_prev(float))


def _iterator(expression: str, moment: float, zone: str) -> Any:
    from croniter import croniter

    return croniter(expression, datetime.fromtimestamp(moment, time_zone(zone)))


def check(expression: str) -> CronProblem | None:
    """None when croniter can use the expression; otherwise the first thing wrong with it, in words."""
    text = expression.strip()
    lead = len(expression) - len(expression.lstrip())
    if text.startswith("@"):
        if text.lower() in SHORTCUTS:
            return None
        from mapper.errors import did_you_mean

        hint = did_you_mean(text.lower(), SHORTCUTS) or f"the shortcuts are: {', '.join(SHORTCUTS)}"
        return CronProblem(f"`{text}` is not a cron shortcut", hint, lead, len(text))
    fields = text.split()
    if len(fields) != 5:
        return CronProblem(
            f"a cron expression has 5 fields (minute, hour, day of the month, month, day of the week); "
            f"this one has {len(fields)}",
            EXAMPLE + "; seconds are not supported",
            lead,
            max(1, len(text)),
        )
    if _valid(text):
        return None
    position = lead
    for index, field in enumerate(fields):
        position = expression.index(field, position)
        alone = ["*"] * 5
        alone[index] = field
        if not _valid(" ".join(alone)):
            name, allowed = FIELDS[index]
            return CronProblem(
                f"`{field}` is not a valid {name} (field {index + 1} of the cron expression)",
                f"{'an' if name[0] in 'aeiouh' else 'a'} {name} is {allowed}: a value, a range `a-b`, a list `a,b` "
                "or a step `*/n`",
                position,
                len(field),
            )
        position += len(field)
    return CronProblem(f"`{text}` is not a cron expression wlmap can use", EXAMPLE, lead, max(1, len(text)))


@cache
def _valid(text: str) -> bool:
    from croniter import croniter

    try:
        croniter(text)  # is_valid() accepts six fields (seconds) too: five were counted above
    except (ValueError, TypeError, KeyError):
        return False
    return True


def zone_problem(name: str) -> str | None:
    """None when `name` is a time zone this machine knows (IANA, e.g. `Europe/Berlin`); else a hint."""
    try:
        time_zone(name)
    except (KeyError, ValueError):
        import zoneinfo

        from mapper.errors import did_you_mean

        return did_you_mean(name, zoneinfo.available_timezones()) or "use an IANA name such as `Europe/Berlin`"
    return None


@cache
def time_zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def iso(moment: float) -> str:
    """A time as ISO 8601 UTC to the second: what `since`, `until` and bucket times look like in a mapping."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
