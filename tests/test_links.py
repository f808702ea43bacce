"""mapper.links: values checked against the contract, the link text and its round trip, signing, QR codes.

The round trip is the promise to the system of record: whatever values it puts in a link (spaces, `&`, `#`,
`/`, non-ASCII) come back, through a URL parser, as the same `externalData`. The QR codes are read back by a
real decoder (zxing-cpp), from the PNG as served and from the SVG as a browser would draw it (resvg).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from urllib.parse import parse_qsl, urlsplit

import pytest
import resvg_py
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mapper.errors import Location
from mapper.language.plan import Link, LinkParameter
from mapper.links import LinkError, build, qr, signing, text
from mapper.links.build import MAX_LENGTH, SigningKeyMissing

HERE = Location("m.yaml", 1, 1)
KEY = b"a-link-key-for-the-tests"


def link(*parameters: LinkParameter, signed: bool = False, target: str = "asset", target_id: str | None = None) -> Link:
    return Link(HERE, parameters=parameters, signed=signed, target=target, target_id=target_id)


def parameter(name: str, **rules: object) -> LinkParameter:
    return LinkParameter(name, HERE, **rules)  # type: ignore[arg-type]


EVERY_KIND = link(
    parameter("incident", required=True, pattern="INC[0-9]{7}", max_length=10),
    parameter("note", max_length=200),
    parameter("count", type="integer"),
    parameter("ratio", type="number"),
    parameter("complete", type="boolean"),
)


def decoded(image: bytes) -> list[str]:
    """Every QR code a real decoder finds in a PNG."""
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))]


# ----------------------------------------------------------------------------------------------- the text


def test_a_link_for_every_kind_of_parameter() -> None:
    built = build(
        EVERY_KIND,
        {
            "incident": "INC0010001",
            "note": "seal & gasket #2 / bay 3 — Überprüfung",
            "count": "-12",
            "ratio": "2.5",
            "complete": "true",
        },
        "P-101",
    )
    assert built.link == (
        "worklink://resource?action=fetch_catalog&asset=P-101&incident=INC0010001"
        "&note=seal%20%26%20gasket%20%232%20%2F%20bay%203%20%E2%80%94%20%C3%9Cberpr%C3%BCfung"
        "&count=-12&ratio=2.5&complete=true"
    )
    assert built.deferred_link == "https://getworklink.com/deferred?deep_link=" + text.encode(built.link)
    assert built.parameters == {
        "incident": "INC0010001",
        "note": "seal & gasket #2 / bay 3 — Überprüfung",
        "count": "-12",
        "ratio": "2.5",
        "complete": "true",
    }


def test_the_target_is_the_mappings_and_a_fixed_one_is_used() -> None:
    assert build(link(target="catalog"), {}, "C 7").link == "worklink://resource?action=fetch_catalog&catalog=C%207"
    assert build(link(target="asset_id", target_id="A1"), {}, None).link.endswith("&asset_id=A1")


def test_an_optional_parameter_given_empty_is_left_out() -> None:
    built = build(EVERY_KIND, {"incident": "INC0010001", "note": "", "complete": ""}, "P-101")
    assert built.parameters == {"incident": "INC0010001"}
    assert "note" not in built.link


def test_encoding_is_encodeURIComponents() -> None:
    """Unreserved characters and `!'()*` stay; everything else is percent-encoded as UTF-8."""
    assert text.encode("AZaz09-_.!~*'()") == "AZaz09-_.!~*'()"
    assert text.encode(" &#/?=+%") == "%20%26%23%2F%3F%3D%2B%25"
    assert text.encode("é€😀") == "%C3%A9%E2%82%AC%F0%9F%98%80"


values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # no lone surrogates: not text
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
    lambda n: n not in {"action", "asset", "asset_id", "catalog", "contact", "sig", "deferred", "access_token"}
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, min_size=1, max_size=5), values.filter(bool))
def test_any_values_round_trip_through_a_url_parser(given_values: dict[str, str], asset: str) -> None:
    contract = link(*(parameter(name) for name in given_values))
    kept = {name: value for name, value in given_values.items() if value}  # empty optional ones are left out
    built = build(contract, given_values, asset)
    for url in (built.link, built.deferred_link):
        assert text.external_data(url, "asset") == kept
    parts = urlsplit(built.link)
    assert (parts.scheme, parts.netloc) == ("worklink", "resource")
    assert dict(parse_qsl(parts.query, keep_blank_values=True)) == {"action": "fetch_catalog", "asset": asset, **kept}
    deferred = dict(parse_qsl(urlsplit(built.deferred_link).query))
    assert deferred == {"deep_link": built.link}


# ------------------------------------------------------------------------------------------ the contract


@pytest.mark.parametrize(
    ("values", "target", "problems"),
    [
        ({}, "P-1", ["`incident` is required"]),
        ({"incident": ""}, "P-1", ["`incident` is required"]),
        ({"incident": "INC0010001"}, None, ["the link needs the `asset` it opens (its id)"]),
        (
            {"incident": "INC0010001", "incidnet": "x"},
            "P-1",
            ["`incidnet` is not a parameter of this link: did you mean `incident`?"],
        ),
        (
            {"incident": "INC0010001", "zzz": "x"},
            "P-1",
            ["`zzz` is not a parameter of this link: it takes: incident, note, count, ratio, complete"],
        ),
        ({"incident": "INC12"}, "P-1", ['`incident` "INC12" does not match the pattern `INC[0-9]{7}`']),
        ({"incident": "INC00100011"}, "P-1", ["`incident` is 11 characters long; at most 10 are allowed"]),
        ({"incident": "INC0010001", "count": "1.5"}, "P-1", ['`count` must be a whole number, not "1.5"']),
        ({"incident": "INC0010001", "ratio": "1e3"}, "P-1", ['`ratio` must be a number, not "1e3"']),
        ({"incident": "INC0010001", "complete": "yes"}, "P-1", ['`complete` must be `true` or `false`, not "yes"']),
        ({"incident": "INC0010001", "note": "a\udcff"}, "P-1", ["`note` is not valid text"]),
        (
            {"incident": "INC0010001", "n\udcffx": "1"},
            "P-1",
            ["`n\\udcffx` is not a parameter of this link: it takes: incident, note, count, ratio, complete"],
        ),
    ],
)
def test_a_value_that_breaks_the_contract_is_said_in_plain_words(
    values: dict[str, str], target: str | None, problems: list[str]
) -> None:
    with pytest.raises(LinkError) as raised:
        build(EVERY_KIND, values, target)
    assert raised.value.problems == problems
    assert str(raised.value) == "; ".join(problems)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(LinkError) as raised:
        build(EVERY_KIND, {"count": "x", "complete": "no"}, None)
    assert raised.value.problems == [
        "the link needs the `asset` it opens (its id)",
        "`incident` is required",
        '`count` must be a whole number, not "x"',
        '`complete` must be `true` or `false`, not "no"',
    ]


def test_a_fixed_target_cannot_be_changed() -> None:
    with pytest.raises(LinkError, match=r'this link always opens catalog "C1" \(`target_id` in the mapping\)'):
        build(link(target="catalog", target_id="C1"), {}, "C2")


def test_a_link_too_long_for_a_qr_code_is_refused() -> None:
    with pytest.raises(
        LinkError,
        match=rf"the link is too long \(\d+ characters in its deferred form, at most "
        rf"{MAX_LENGTH}\): shorten the values",
    ):
        build(link(parameter("note")), {"note": "ü" * 400}, "P-1")


# -------------------------------------------------------------------------------------------- signing


def test_a_signed_link_carries_an_hmac_of_its_parameters_in_name_order() -> None:
    contract = link(parameter("notification"), parameter("complete"), signed=True)
    built = build(contract, {"notification": "10000123", "complete": "true"}, "P-1", (KEY,))
    # independently: HMAC-SHA256 of the sorted query string, first 16 bytes, base64url without padding
    digest = hmac.new(KEY, b"complete=true&notification=10000123", hashlib.sha256).digest()[:16]
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert built.parameters["sig"] == expected and len(expected) == 22
    assert built.link.endswith(f"&sig={expected}")
    assert text.external_data(built.link, "asset")["sig"] == expected


def test_the_newest_key_signs_and_every_key_verifies() -> None:
    old, new = signing.keys_from(" old-key , new-key ")
    assert (old, new) == (b"old-key", b"new-key")
    pairs = [("incident", "INC0010001")]
    by_old = signing.sign(pairs, old)
    assert build(link(parameter("incident"), signed=True), dict(pairs), "A", (old, new)).parameters["sig"] == (
        signing.sign(pairs, new)
    )
    assert signing.matches(pairs, by_old, (old, new))
    assert not signing.matches(pairs, by_old, (new,))
    assert not signing.matches([("incident", "INC0010002")], by_old, (old, new))
    assert not signing.matches(pairs, "ünïcode", (old, new))  # compared as bytes, never a TypeError


def test_a_signed_link_without_a_key_cannot_be_made() -> None:
    with pytest.raises(SigningKeyMissing, match="this mapping requires signed links, and WLMAP_LINK_KEY is not set"):
        build(link(parameter("incident"), signed=True), {"incident": "x"}, "A", ())


# ------------------------------------------------------------------------------------------- QR codes


LINKS = [
    "worklink://resource?action=fetch_catalog&asset=P-101&incident=INC0010001",
    build(EVERY_KIND, {"incident": "INC0010001", "note": "seal & gasket #2 / bay 3 — Ü"}, "P 101").deferred_link,
]


@pytest.mark.parametrize("url", LINKS)
def test_the_png_decodes_to_the_same_link(url: str) -> None:
    image = qr.image(url, "png")
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert decoded(image) == [url]


@pytest.mark.parametrize("url", LINKS)
def test_the_svg_decodes_to_the_same_link_when_drawn(url: str) -> None:
    svg = qr.image(url, "svg").decode()
    assert svg.startswith("<?xml") and "<title>WorkLink deep link</title>" in svg
    drawn = bytes(resvg_py.svg_to_bytes(svg_string=svg))  # no background given: the SVG paints its own
    assert decoded(drawn) == [url]


def test_the_code_keeps_the_standard_quiet_zone_and_module_size() -> None:
    """4 light modules around the code at 8 px each: the first dark pixel of the finder is at (32, 32)."""
    image = Image.open(io.BytesIO(qr.image(LINKS[0], "png"))).convert("L")
    width, height = image.size
    assert width == height and width % qr.SCALE == 0
    dark = [(x, y) for y in range(height) for x in range(width) if image.getpixel((x, y)) < 128]  # type: ignore[operator]
    assert min(dark) == (qr.BORDER * qr.SCALE, qr.BORDER * qr.SCALE)
    assert max(x for x, _ in dark) == width - qr.BORDER * qr.SCALE - 1


# A camera at a distance, as pixels per QR module: the code as served (8 px a module, shown at 96 dpi, so
# 2.1 mm a module on screen) seen by a camera `pixels` wide with a horizontal field of view of `degrees`.
CAMERAS = {"phone": (4000, 70.0), "headset": (1920, 64.7)}  # a 12 MP phone; HoloLens 2's photo/video camera
MODULE_MM = qr.SCALE * 25.4 / 96


@pytest.mark.parametrize(("camera", "metres"), [("phone", 0.3), ("phone", 1.5), ("headset", 1.0)])
def test_the_code_reads_from_a_phone_or_headset_at_a_distance(camera: str, metres: float) -> None:
    """The deferred, signed link (the largest QR code here) shrunk and blurred as that camera would see it."""
    import math

    from PIL import ImageFilter

    url = text.deferred_url(
        text.worklink_url("fetch_catalog", "asset", "PUMP-P-101-A", [("incident", "INC0010001"), ("sig", "A" * 22)])
    )
    image = Image.open(io.BytesIO(qr.image(url, "png"))).convert("L")
    pixels, degrees = CAMERAS[camera]
    field_mm = 2 * metres * 1000 * math.tan(math.radians(degrees / 2))
    per_module = MODULE_MM * pixels / field_mm
    assert per_module >= 2.0, f"{camera} at {metres} m: {per_module:.1f} px a module"  # the decoder's floor
    side = round(image.size[0] / qr.SCALE * per_module)
    seen = image.resize((side, side), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(0.6))
    frame = Image.new("L", (side * 3, side * 3), 170)  # the rest of the camera's picture: a grey wall
    frame.paste(seen, (side, side))
    assert [found.text for found in zxingcpp.read_barcodes(frame)] == [url]
