"""Deep links: a mapping's link contract and some values → the WorkLink link, signed if asked, or a QR code.

Between `language` (the contract, `Plan.link`) and `run` (which checks a signed link's signature). Modules:
`contract` (values checked against `link:`, every problem in plain words), `text` (the `worklink://` and
deferred URLs, and reading one back as WorkLink stores it), `signing` (the HMAC), `build` (all of it for one
link), `received` (the signature an event's `externalData` carries), `qr` (the image; the only module that
imports segno, and only imported when an image is wanted).
"""

from mapper.links.build import Built, build
from mapper.links.contract import LinkError

__all__ = ["Built", "LinkError", "build"]
