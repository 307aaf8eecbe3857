"""The signing key: from settings, or generated once into the data directory (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from changegate.errors import ConfigurationError
from changegate.settings import Settings

KEY_FILE = "signing.key"
_MIN_BYTES = 16


def load_signing_key(settings: Settings) -> bytes:
    """The key the API signs with and workers verify with.

    `CHANGEGATE_SIGNING_KEY` wins; otherwise `signing.key` in the data directory, created
    on first use. Creation is atomic (written aside, then hard-linked into place), so
    processes starting together agree on one key.
    """
    if settings.signing_key is not None:
        key = settings.signing_key.get_secret_value().encode()
        if len(key) < _MIN_BYTES:
            raise ConfigurationError(
                f"CHANGEGATE_SIGNING_KEY is {len(key)} bytes; use at least {_MIN_BYTES} "
                "random bytes (e.g. `openssl rand -hex 32`)"
            )
        return key
    path = settings.data_dir / KEY_FILE
    if not path.exists():
        _create(path)
    key = path.read_bytes().strip()
    if len(key) < _MIN_BYTES:
        raise ConfigurationError(f"{path} holds no usable key; delete it to make a new one")
    return key


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # someone else's key won the race: use theirs
    finally:
        aside.unlink(missing_ok=True)
