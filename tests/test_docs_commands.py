"""The README and docs/ against the real command line (as sqlite-utils does): every command is documented, every
documented command line parses, and every option the README's command table names is real."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from mapper.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_ENDS = {">", ">>", "|", "&&", "||", ";", "2>&1", "&"}
WLMAP = re.compile(r"^(?:\$ )?(?:Exec\w+=)?(?:\S*/)?wlmap (.*)$")


def cli() -> Any:
    main.register_all()
    return typer.main.get_command(main.app)


def commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command the user can type, `events list` included (hidden ones left out)."""
    for name, command in sorted(getattr(group, "commands", {}).items()):
        if getattr(command, "hidden", False):
            continue
        if getattr(command, "commands", None):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def documented_lines() -> list[tuple[str, str]]:
    """(where, `wlmap ...` line) of every code block in README.md and docs/*.md, continuation lines joined."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                match = WLMAP.match(line.strip())
                if match:
                    found.append((doc.name, match.group(1)))
    return found


def table_rows() -> list[str]:
    """The first cell of every row of the README's command table: `wlmap validate PATHS… [--format ...]`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("\n## The command line\n", 1)[1].strip().split("\n\n", 1)[0]
    return [re.match(r"\| `(wlmap [^|]*?(?:\\\|[^|]*?)*)` \|", row).group(1) for row in table.splitlines()[2:]]  # type: ignore[union-attr]


def parse(group: Any, args: list[str]) -> None:
    """Parse a command line as `wlmap` would, without running it; raises the CLI's usage error."""
    command, name = group, "wlmap"
    while getattr(command, "commands", None):
        if not args or args[0] not in command.commands:
            raise AssertionError(f"no command {args[:1]} under {name}")
        name, command, args = args[0], command.commands[args[0]], args[1:]
    command.make_context(name, args)


def arguments(line: str) -> list[str]:
    """The words of a documented line up to a shell operator, with synopsis brackets taken off."""
    words = []
    for word in shlex.split(line.replace("%i", "1"), comments=True):  # a systemd unit's instance name
        if word in SHELL_ENDS:
            break
        words.append(word.strip("[]"))
    return [word for word in words if word]


def test_every_command_is_in_the_readme_command_table() -> None:
    rows = table_rows()
    assert len(rows) >= 12
    missing = [
        " ".join(path) for path, _ in commands(cli()) if not any(r.startswith(f"wlmap {' '.join(path)}") for r in rows)
    ]
    assert missing == []


def test_every_option_in_the_command_table_is_real() -> None:
    known = dict(commands(cli()))
    wrong = []
    for row in table_rows():
        words = row.split()[1:]
        path = max((p for p in known if tuple(words[: len(p)]) == p), key=len, default=None)
        assert path is not None, row
        options = {opt for param in known[path].params for opt in param.opts if opt.startswith("--")}
        wrong += [f"{row}: {flag}" for flag in re.findall(r"--[a-z][a-z-]*", row) if flag not in options]
    assert wrong == []


@pytest.mark.parametrize(("where", "line"), documented_lines(), ids=lambda value: str(value)[:60])
def test_every_documented_command_line_parses(where: str, line: str) -> None:
    try:
        parse(cli(), arguments(line))
    except Exception as exc:  # the CLI's own usage error, with its message
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise AssertionError(f"{where}: `wlmap {line}`: {message}") from None


def test_the_docs_have_command_lines_of_every_kind() -> None:
    """The parse test above is not vacuous: it sees the walkthrough, the operator commands and the unit file."""
    lines = [line for _, line in documented_lines()]
    assert len(lines) >= 40
    for start in ("validate", "run --serve", "test", "demo", "events show", "replay", "send", "prune", "link", "new"):
        assert any(line.startswith(start) for line in lines), start


def test_a_wrong_option_or_value_does_not_parse() -> None:
    """The parse test can fail: an option that does not exist, and a value outside its choices, are refused."""
    with pytest.raises(Exception, match="--colour"):
        parse(cli(), arguments("validate mappings/ --colour"))
    with pytest.raises(Exception, match="yaml"):
        parse(cli(), arguments("run mappings/servicenow.yaml --event e.json --format yaml"))


def test_the_statuses_the_readme_lists_are_the_ones_events_list_takes() -> None:
    from mapper.service.operations import STATUSES

    row = next(r for r in table_rows() if r.startswith("wlmap events list"))
    listed = re.search(r"--status ([a-z\\|]+)\]", row)
    assert listed is not None and tuple(listed.group(1).split("\\|")) == STATUSES
