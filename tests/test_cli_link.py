"""`wlmap link`: the command a person or a script runs to get one link (or its QR code), as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SERVICENOW = str(ROOT / "mappings" / "servicenow.yaml")
LINK = "worklink://resource?action=fetch_catalog&asset=P%20101%2F3&incident=INC0010001"


def wlmap(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "WLMAP_LINK_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "mapper.cli", "link", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
    )


def test_it_prints_the_link() -> None:
    done = wlmap(SERVICENOW, "--asset", "P 101/3", "--param", "incident=INC0010001")
    assert (done.returncode, done.stdout, done.stderr) == (0, LINK + "\n", "")


def test_deferred_and_json() -> None:
    deferred = wlmap(SERVICENOW, "--asset", "P 101/3", "--param", "incident=INC0010001", "--deferred")
    assert deferred.stdout.strip() == "https://getworklink.com/deferred?deep_link=" + (
        "worklink%3A%2F%2Fresource%3Faction%3Dfetch_catalog%26asset%3DP%2520101%252F3%26incident%3DINC0010001"
    )
    answer = json.loads(
        wlmap(SERVICENOW, "--asset", "P 101/3", "--param", "incident=INC0010001", "--format", "json").stdout
    )
    assert answer == {
        "mapping": "servicenow-incident-call",
        "link": LINK,
        "deferred_link": deferred.stdout.strip(),
        "asset": "P 101/3",
        "external_data": {"incident": "INC0010001"},
    }


@pytest.mark.parametrize("suffix", ["svg", "png"])
def test_it_writes_a_qr_code_that_decodes_to_the_link(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"incident.{suffix}"
    done = wlmap(SERVICENOW, "--asset", "P 101/3", "--param", "incident=INC0010001", "--qr", str(out))
    assert done.returncode == 0 and done.stdout.strip() == LINK
    if suffix == "svg":
        import resvg_py

        image = bytes(resvg_py.svg_to_bytes(svg_string=out.read_text()))
    else:
        image = out.read_bytes()
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))] == [LINK]


# Where the contract is declared: the first line inside the mapping's `link:` section.
LINK_LINE = 1 + next(n for n, line in enumerate(Path(SERVICENOW).read_text().splitlines(), 1) if line == "link:")


def test_a_bad_parameter_is_a_plain_located_error() -> None:
    done = wlmap(SERVICENOW, "--asset", "P-101", "--param", "incident=INC 1", "--param", "incidnet=x")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "wlmap: `incidnet` is not a parameter of this link: did you mean `incident`?; "
        '`incident` "INC 1" does not match the pattern `[A-Za-z0-9_-]+`',
        f"  the link contract: {SERVICENOW}:{LINK_LINE}",
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--asset", "P", "--param", "incident"], 2, "wlmap: --param incident: write NAME=VALUE"),
        (
            ["--asset", "P", "--param", "incident=A", "--param", "incident=B"],
            2,
            "wlmap: --param incident is given twice",
        ),
        (
            ["--catalog", "C", "--param", "incident=A"],
            2,
            "wlmap: this link opens an asset: give --asset ID, not --catalog",
        ),
        (["--asset", "P", "--catalog", "C"], 2, "wlmap: give one of --asset, --catalog, not several"),
        (
            ["--asset", "P", "--param", "incident=A", "--qr", "x.gif"],
            2,
            "wlmap: --qr x.gif: the file must end in .svg or .png",
        ),
        (
            ["--asset", "P", "--param", "incident=A", "--qr", "no/such/dir/x.png"],
            1,
            "wlmap: --qr no/such/dir/x.png: cannot write the file: No such file or directory",
        ),
    ],
)
def test_usage_mistakes(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    done = wlmap(SERVICENOW, *args, cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (code, message)


def test_a_mapping_without_a_link_says_what_to_add(tmp_path: Path) -> None:
    text = (ROOT / "mappings" / "servicenow.yaml").read_text()
    start, end = text.index("\nlink:\n"), text.index("\ntrigger:\n")
    (tmp_path / "m.yaml").write_text(text[:start] + text[end:])
    done = wlmap(str(tmp_path / "m.yaml"), "--asset", "P")
    assert (done.returncode, done.stderr.strip()) == (
        1,
        f'wlmap: {tmp_path / "m.yaml"} declares no `link:`: add one (docs/mapping.md, "Building the deep link")',
    )


SIGNED = """version: 1
name: signed-orders
link: { signed: true, parameters: { order: { required: true } } }
trigger: { topics: [scenario_session/completed] }
connections: { orders: { base_url: https://orders.example.com } }
extract: { order: payload.data.node.externalData.order }
steps: [ { name: send, connection: orders, method: POST, path: "/orders/{{ order }}" } ]
"""


def test_a_signed_link_needs_the_key_and_carries_its_signature(tmp_path: Path) -> None:
    (tmp_path / "signed.yaml").write_text(SIGNED)
    without = wlmap(str(tmp_path / "signed.yaml"), "--asset", "P", "--param", "order=7")
    assert without.returncode == 1
    assert without.stderr.splitlines()[0] == "wlmap: this mapping requires signed links, and WLMAP_LINK_KEY is not set"
    signed = wlmap(str(tmp_path / "signed.yaml"), "--asset", "P", "--param", "order=7", env={"WLMAP_LINK_KEY": "k1,k2"})
    assert signed.returncode == 0
    assert signed.stdout.startswith("worklink://resource?action=fetch_catalog&asset=P&order=7&sig=")
    assert "k2" not in signed.stdout + signed.stderr


def test_an_invalid_mapping_is_reported_as_validate_does(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        SIGNED.replace("order: payload.data.node.externalData.order", "order: payload.data.node.externalData.ordr")
    )
    done = wlmap(str(tmp_path / "bad.yaml"), "--asset", "P")
    assert done.returncode == 1
    assert "`ordr` is not a parameter of the deep link" in done.stderr and "did you mean `order`?" in done.stderr
