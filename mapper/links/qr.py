"""A link as a QR code image (SVG or PNG), with segno: pure Python, no Pillow. The only module that imports it.

Choices for a code read by a phone, tablet or headset camera from a screen or a printed work order:
- error correction M (15 % of the code may be lost), raised by segno when that costs no size (`boost_error`):
  printed sheets get creased and smudged; H would make the code denser for the same link.
- quiet zone 4 modules, as ISO/IEC 18004 asks for QR codes (segno's default).
- 8 px per module: the shipped mappings' links are versions 5–9 (37–53 modules + quiet zone), 360–488 px,
  10–13 cm on a 96 dpi screen, so 2.1 mm modules: 4 camera pixels a module for a 12 MP phone 1.5 m away,
  3.2 for a HoloLens 2 1 m away; decoders need about 2 (tests/test_links.py shrinks and blurs the largest code
  so and decodes it). The SVG scales without loss; its size is only the default.
"""

from __future__ import annotations

import io
from typing import Literal

import segno

from mapper.links.contract import LinkError

Kind = Literal["svg", "png"]
ERROR = "m"
BORDER = 4
SCALE = 8
CONTENT_TYPES: dict[Kind, str] = {"svg": "image/svg+xml", "png": "image/png"}


def image(text: str, kind: Kind) -> bytes:
    """The QR code of `text` as an SVG or PNG file."""
    try:
        code = segno.make_qr(text, error=ERROR, boost_error=True)
    except segno.DataOverflowError:
        raise LinkError(["the link is too long for a QR code: shorten the values"]) from None
    out = io.BytesIO()
    if kind == "svg":
        # light="#fff": the quiet zone must be light on a dark page too (segno's SVG leaves it transparent)
        code.save(out, kind="svg", scale=SCALE, border=BORDER, light="#fff", title="WorkLink deep link")
    else:
        code.save(out, kind="png", scale=SCALE, border=BORDER)
    return out.getvalue()
