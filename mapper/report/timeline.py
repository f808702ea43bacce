"""A run's timeline (service.timeline) as text: what `wlmap events show` prints, the console's page in words."""

from __future__ import annotations

from mapper.service.timeline import Exchange, Timeline

MARKS = {"ok": "ok", "failed": "FAILED", "skipped": "skipped", "note": "-"}


def exchange_lines(exchange: Exchange, indent: str = "    ") -> list[str]:
    label = f" ({exchange.label})" if exchange.label else ""
    lines = [f"{indent}→ {exchange.method} {exchange.url}{label}"]
    lines += [f"{indent}    {name}: {value}" for name, value in exchange.headers]
    if exchange.body is not None:
        lines += [f"{indent}    {row}" for row in ("body: " + exchange.body).splitlines()]
    if exchange.error is not None:
        lines.append(f"{indent}← no answer: {exchange.error}")
    elif exchange.status is not None:
        took = f" in {exchange.duration_ms:.0f} ms" if isinstance(exchange.duration_ms, int | float) else ""
        lines.append(f"{indent}← {exchange.status}{took}")
        if exchange.answer is not None:
            lines += [f"{indent}    {row}" for row in exchange.answer.splitlines()]
    return lines


def timeline_text(timeline: Timeline, indent: str = "  ") -> str:
    lines = [f"{indent}mapping {timeline.mapping} ({timeline.file}, version {timeline.digest})"]
    lines += [f"{indent}note: {note}" for note in timeline.notes]
    for entry in timeline.entries:
        lines.append(f"{indent}{MARKS[entry.mark]:<8}{entry.title}")
        lines += [f"{indent}    {row}" for line in entry.lines for row in line.splitlines()]
        for exchange in entry.exchanges:
            lines += exchange_lines(exchange, indent + "    ")
    step = f" at step `{timeline.step}`" if timeline.step else ""
    lines.append(f"{indent}outcome {timeline.outcome}{step}: {timeline.reason}")
    return "\n".join(lines)
