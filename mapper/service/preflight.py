"""What the service checks before it opens anything: the role, the secret, the signature scheme, the links
endpoint's token, the console's credential, and (for /readyz) the room left on the store's disk."""

from __future__ import annotations

import ipaddress
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mapper.language.plan import LINK_KEY_ENV
from mapper.links.signing import keys_from
from mapper.service import links
from mapper.service.listener import Network
from mapper.service.options import (
    LINKS_PATH,
    LINKS_TOKEN_ENV,
    LINKS_TOKEN_MIN,
    ROLES,
    SECRETS_ENV,
    UI_PASSWORD_ENV,
    UI_TOKEN_ENV,
    UI_USER_ENV,
    ServiceError,
    ServiceOptions,
)
from mapper.service.signature import SignatureScheme
from mapper.service.store import is_postgres

if TYPE_CHECKING:
    from mapper.service.console.app import Given

log = logging.getLogger("wlmap.service")


def signature_scheme(options: ServiceOptions) -> SignatureScheme:
    """What can be refused before anything is opened: the role, a missing secret, the signature scheme."""
    if options.role not in ROLES:
        raise ServiceError(f"--role must be one of {', '.join(ROLES)}, not {options.role!r}")
    if options.processes < 0:
        raise ServiceError(f"--processes must be 0 (one process) or more, not {options.processes}")
    if options.takes_webhooks and not options.secrets and not options.allow_unsigned:
        raise ServiceError(
            f"no webhook secret: set {SECRETS_ENV} (comma-separated during a rotation), "
            "or pass --allow-unsigned to accept legacy webhooks that carry no signature"
        )
    try:
        scheme = SignatureScheme(header=options.signature_header, encoding=options.signature_encoding)
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    networks = unsigned_from(options.unsigned_from)
    if networks and not options.allow_unsigned:
        raise ServiceError("--unsigned-from says where unsigned webhooks may come from: it needs --allow-unsigned")
    return scheme


def warn_unsigned(options: ServiceOptions, scheme: SignatureScheme) -> None:
    if options.allow_unsigned and options.takes_webhooks:
        log.warning(
            "--allow-unsigned: legacy webhooks WITHOUT a %s header (and without X-Scope-* headers) are accepted "
            "unverified from %s, for mappings whose trigger says `allow_unsigned: true`; a present but wrong "
            "signature is still refused",
            scheme.header,
            ", ".join(map(str, unsigned_from(options.unsigned_from))) or "any address",
        )


def console_allowed(options: ServiceOptions, console: Given | None) -> None:
    if options.ui_port is not None and (console is None or not console.credentials.configured):
        raise ServiceError(
            f"--ui-port: the console needs a credential: set {UI_PASSWORD_ENV} (and {UI_USER_ENV}) or {UI_TOKEN_ENV}"
        )


def link_options(options: ServiceOptions) -> links.LinkOptions | None:
    """The /links endpoint's settings when --links asks for it; refused without a token of its own."""
    if not (options.links and options.takes_webhooks):
        return None
    token = options.links_token
    if not token:
        raise ServiceError(f"--links needs a token of its own: set {LINKS_TOKEN_ENV}")
    if len(token) < LINKS_TOKEN_MIN:
        raise ServiceError(f"{LINKS_TOKEN_ENV} is too short: use at least {LINKS_TOKEN_MIN} random characters")
    if token in options.secrets:
        raise ServiceError(f"{LINKS_TOKEN_ENV} must not be a webhook secret: give the links a token of their own")
    if options.path == LINKS_PATH or options.path.startswith(LINKS_PATH + "/"):
        raise ServiceError(f"--path {options.path}: with --links, {LINKS_PATH} is taken; choose another path")
    if options.links_rate <= 0:
        raise ServiceError("--links-rate must be more than 0 requests a second")
    return links.LinkOptions(token=token, keys=keys_from(options.env.get(LINK_KEY_ENV)), rate=options.links_rate)


def unsigned_from(given: str | None) -> tuple[Network, ...]:
    """--unsigned-from: comma-separated networks ("203.0.113.0/24,2001:db8::/32", a lone address)."""
    networks = []
    for part in (piece.strip() for piece in (given or "").split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ServiceError(f"--unsigned-from: `{part}` is not an address or network (203.0.113.0/24)") from None
    return tuple(networks)


def disk_problem(options: ServiceOptions) -> str | None:
    """A SQLite store's disk with less room than a few webhooks need: not ready before webhooks are refused."""
    if is_postgres(options.store):
        return None
    folder = Path(options.store).resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None  # the store's own probe said it can write
    floor = 4 * options.max_body
    if free < floor:
        return f"store not writable: {free // 1024} KiB free on the store's disk (less than {floor // 1024} KiB)"
    return None
