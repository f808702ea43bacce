"""The webhook secret of a local run: made once when none is configured, kept in a file only its owner reads.

`wlmap run --serve` without WLMAP_WEBHOOK_SECRETS (and without --require-secret) takes the secret from
SECRET_FILE in the working folder, making it on the first start; the file is git-ignored and never inside the
package. Production passes --require-secret (or sets WLMAP_REQUIRE_SECRET=1): there a missing secret is an
error, not a surprise secret that Scope AR does not know, which would refuse every webhook it sends.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SECRET_FILE: Final = ".wlmap-secret"
REQUIRE_ENV: Final = "WLMAP_REQUIRE_SECRET"


class SecretFileError(Exception):
    """The secret file cannot be made or read, or others may read it; the message says what to do."""


@dataclass(frozen=True)
class LocalSecret:
    value: str
    path: Path
    made: bool  # made now (its value is shown once), or read from an earlier start


def local_secret(folder: Path = Path()) -> LocalSecret:
    """The secret in `folder`/SECRET_FILE, made (mode 0600) when there is none."""
    path = folder / SECRET_FILE
    value = secrets.token_urlsafe(32)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return LocalSecret(_read(path), path, made=False)
    except OSError as exc:
        raise SecretFileError(f"cannot make {path}: {exc.strerror}; set WLMAP_WEBHOOK_SECRETS instead") from None
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return LocalSecret(value, path, made=True)


def _read(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"{path} may be read by others (mode {stat.S_IMODE(mode):04o}): `chmod 600 {path}`, or delete it to "
            "have a new secret made"
        )
    if not text:
        raise SecretFileError(f"{path} is empty: delete it to have a new secret made")
    return text


def announcement(secret: LocalSecret, send_url: str) -> str:
    """What is printed at start: the secret itself only when it was just made."""
    sign = f'wlmap send samples/events/call-ended.json --url {send_url} --secret "$(cat {secret.path})"'
    if not secret.made:
        return f"webhook secret: the one in {secret.path} (WLMAP_WEBHOOK_SECRETS overrides it); send with:\n  {sign}"
    return "\n".join(
        (
            f"No webhook secret was set, so one was made and saved in {secret.path} (readable by you only):",
            f"  {secret.value}",
            "Give it to Scope AR for the webhook subscription, and sign test webhooks with it:",
            f"  {sign}",
            "In production set WLMAP_WEBHOOK_SECRETS and pass --require-secret (docs/operations.md).",
        )
    )
