"""Context sources: facts about targets that an agent may not have cited (flags, notes).

A source yields a document of this shape (YAML or JSON):

    flags:
      "fleet:service=checkout":          # a target label or a glob over labels
        checkout.new_pricing: true
      "fleet:*":
        global.degraded_mode: false

Sources are read inside the VALIDATE activity, never in the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from changegate.errors import ChangegateError


class ContextSourceError(ChangegateError):
    """A context source could not be read or holds something that is not a context document."""


class ContextDocument(BaseModel):
    """What one source says: flags by target label glob."""

    model_config = ConfigDict(extra="forbid")

    flags: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)


class ContextSource(Protocol):
    """Anything that can produce a context document."""

    name: str

    async def read(self) -> ContextDocument:
        """The current document."""
        ...


def _parse(text: str, *, where: str) -> ContextDocument:
    try:
        return ContextDocument.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ContextSourceError(
            f"context source {where} is not a context document: {exc}"
        ) from exc


class FileContextSource:
    """A YAML or JSON file, re-read on every validation."""

    def __init__(self, path: Path) -> None:
        """Read `path`."""
        self.path = path
        self.name = f"file:{path}"

    async def read(self) -> ContextDocument:
        """Parse the file; a missing file is an error, not an empty context."""
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise ContextSourceError(f"cannot read context file {self.path}: {exc}") from exc
        return _parse(text, where=self.name)


class HttpContextSource:
    """An HTTP endpoint returning a context document as JSON or YAML."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        """GET `url`."""
        self.url = url
        self.name = f"http:{url}"
        self._timeout = timeout

    async def read(self) -> ContextDocument:
        """Fetch and parse the document."""
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(self.url)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ContextSourceError(f"cannot fetch context from {self.url}: {exc!r}") from exc
        return _parse(response.text, where=self.name)


async def gather_flags(
    sources: Sequence[ContextSource],
) -> tuple[dict[str, JsonValue], list[str]]:
    """Flags by target glob from every source (later sources win), and the read errors.

    Matching globs against a target is policy's job (`changegate.policy.context_findings`).
    """
    flags: dict[str, JsonValue] = {}
    errors: list[str] = []
    for source in sources:
        try:
            for pattern, values in (await source.read()).flags.items():
                flags[pattern] = dict(values)
        except ContextSourceError as exc:
            errors.append(str(exc))
    return flags, errors
