"""`wlmap link`: the deep link for one service request, as the mapping's `link:` contract says, or its QR code."""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from mapper.cli.main import exit_on_problems
from mapper.language import loader
from mapper.language.plan import LINK_KEY_ENV, Link
from mapper.links import LinkError, build, signing

_WHAT = {"asset": "an asset", "asset_id": "an asset", "catalog": "a catalog", "contact": "a contact"}


class LinkFormat(enum.StrEnum):
    text = "text"
    json = "json"


def link_command(
    mapping: Annotated[
        Path, typer.Argument(metavar="MAPPING", help="The mapping file whose `link:` to follow.", show_default=False)
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="NAME=VALUE", help="A link parameter (repeat for more).", show_default=False),
    ] = None,
    asset: Annotated[str | None, typer.Option("--asset", metavar="ID", help="The asset the link opens.")] = None,
    asset_id: Annotated[str | None, typer.Option("--asset-id", metavar="ID", help="The same, older spelling.")] = None,
    catalog: Annotated[str | None, typer.Option("--catalog", metavar="ID", help="The catalog it opens.")] = None,
    contact: Annotated[str | None, typer.Option("--contact", metavar="ID", help="The contact it opens.")] = None,
    deferred: Annotated[
        bool, typer.Option("--deferred", help="The https://getworklink.com/deferred form (app may be missing).")
    ] = False,
    qr: Annotated[
        Path | None, typer.Option("--qr", metavar="FILE", help="Also write the QR code: FILE.svg or FILE.png.")
    ] = None,
    fmt: Annotated[LinkFormat, typer.Option("--format", help="text (the link) or json.")] = LinkFormat.text,
) -> None:
    """Print the WorkLink deep link for one service request; parameters are checked against the mapping."""
    if qr is not None and qr.suffix.lower() not in (".svg", ".png"):
        typer.echo(f"wlmap: --qr {qr}: the file must end in .svg or .png", err=True)
        raise typer.Exit(2)
    plan, problems = loader.load_file(mapping)
    exit_on_problems(problems)
    assert plan is not None
    if plan.link is None:
        typer.echo(
            f'wlmap: {mapping} declares no `link:`: add one (docs/mapping.md, "Building the deep link")', err=True
        )
        raise typer.Exit(1)
    values = _values(param or [])
    given = {"asset": asset, "asset_id": asset_id, "catalog": catalog, "contact": contact}
    target_id = _target(plan.link, {name: value for name, value in given.items() if value is not None})
    try:
        built = build(plan.link, values, target_id, signing.keys_from(os.environ.get(LINK_KEY_ENV)))
        image = _qr(built.deferred_link if deferred else built.link, qr) if qr is not None else None
    except LinkError as exc:
        typer.echo(f"wlmap: {exc}\n  the link contract: {plan.file}:{plan.link.location.line}", err=True)
        raise typer.Exit(1) from None
    if qr is not None and image is not None:
        try:
            qr.write_bytes(image)
        except OSError as exc:
            typer.echo(f"wlmap: --qr {qr}: cannot write the file: {exc.strerror}", err=True)
            raise typer.Exit(1) from None
    if fmt is LinkFormat.json:
        typer.echo(json.dumps({"mapping": plan.name, **built.as_json()}, indent=2, ensure_ascii=False))
    else:
        typer.echo(built.deferred_link if deferred else built.link)


def _values(specs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name:
            typer.echo(f"wlmap: --param {spec}: write NAME=VALUE", err=True)
            raise typer.Exit(2)
        if name in values:
            typer.echo(f"wlmap: --param {name} is given twice", err=True)
            raise typer.Exit(2)
        values[name] = value
    return values


def _target(link: Link, given: dict[str, str]) -> str | None:
    """The id from the one target option given; the mapping says which one fits."""
    if len(given) > 1:
        typer.echo(f"wlmap: give one of {', '.join('--' + t.replace('_', '-') for t in given)}, not several", err=True)
        raise typer.Exit(2)
    for name, value in given.items():
        if name != link.target:
            option = "--" + link.target.replace("_", "-")
            wrong = "--" + name.replace("_", "-")
            typer.echo(f"wlmap: this link opens {_WHAT[link.target]}: give {option} ID, not {wrong}", err=True)
            raise typer.Exit(2)
        return value
    return None


def _qr(text: str, file: Path) -> bytes:
    from mapper.links import qr  # segno: only when an image is wanted

    return qr.image(text, "svg" if file.suffix.lower() == ".svg" else "png")
