"""Where the CLI keeps its login: one file in the user's config directory, mode 0600."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from changegate.settings import Settings

FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """The API to talk to and the token to show it."""

    api_url: str
    token: str | None


def credentials_path(settings: Settings) -> Path:
    """The credentials file (`$XDG_CONFIG_HOME/changegate/credentials.json`)."""
    return settings.config_dir / FILE


def load_credentials(settings: Settings) -> Credentials:
    """`CHANGEGATE_TOKEN` and `CHANGEGATE_API_URL` win; else what `login` or `up` stored."""
    stored: dict[str, str] = {}
    path = credentials_path(settings)
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
            stored = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            stored = {}
    explicit_url = "api_url" in settings.model_fields_set
    api_url = settings.api_url if explicit_url else stored.get("api_url", settings.api_url)
    if settings.token is not None:
        return Credentials(api_url=api_url, token=settings.token.get_secret_value())
    # A stored token belongs to the API it was issued by.
    same_api = stored.get("api_url", "").rstrip("/") == api_url.rstrip("/")
    return Credentials(api_url=api_url, token=stored.get("token") if same_api else None)


def save_credentials(settings: Settings, *, api_url: str, token: str) -> Path:
    """Store the login (replacing any earlier one) readable by the user alone."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{FILE}.{os.getpid()}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"api_url": api_url.rstrip("/"), "token": token}, out)
    os.replace(aside, path)
    return path


def forget_credentials(settings: Settings) -> bool:
    """Remove the stored login; False when there was none."""
    path = credentials_path(settings)
    if not path.exists():
        return False
    path.unlink()
    return True
