"""One link for one mapping: the values checked, signed when the mapping says so, as text and deferred text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from mapper.language.plan import LINK_KEY_ENV, SIGNATURE_PARAMETER, Link
from mapper.links import contract, signing, text
from mapper.links.contract import LinkError

# The deferred form is the longer one; 2048 characters fit a QR code at error correction M (2331 bytes at
# version 40) and every browser's address bar.
MAX_LENGTH = 2048


class Built(NamedTuple):
    link: str  # worklink://resource?...
    deferred_link: str  # https://getworklink.com/deferred?deep_link=...
    target: str  # asset, asset_id, catalog or contact
    target_id: str
    parameters: dict[str, str]  # what comes back as externalData (the signature included)

    def as_json(self) -> dict[str, object]:
        """What `wlmap link --format json` prints and `GET /links/<mapping>` answers."""
        return {
            "link": self.link,
            "deferred_link": self.deferred_link,
            self.target: self.target_id,
            "external_data": self.parameters,
        }


class SigningKeyMissing(LinkError):
    """The mapping requires signed links and no key was given: the deployment's problem, not the caller's."""


def build(link: Link, values: Mapping[str, str], target_id: str | None, keys: Sequence[bytes] = ()) -> Built:
    """The link for these values; LinkError with every problem when they do not keep to the contract."""
    target, pairs = contract.check(link, values, target_id)
    if link.signed:
        if not keys:
            raise SigningKeyMissing([f"this mapping requires signed links, and {LINK_KEY_ENV} is not set"])
        pairs.append((SIGNATURE_PARAMETER, signing.sign(pairs, keys[-1])))
    worklink = text.worklink_url(link.action, link.target, target, pairs)
    deferred = text.deferred_url(worklink)
    if len(deferred) > MAX_LENGTH:
        raise LinkError(
            [
                f"the link is too long ({len(deferred)} characters in its deferred form, at most {MAX_LENGTH}): "
                "shorten the values"
            ]
        )
    return Built(worklink, deferred, link.target, target, dict(pairs))
