"""Where notices go: channels as the worker's settings configure them.

A channel's URL or routing key is a secret (incoming-webhook URLs carry their token), so it
is a `SecretStr`, read only by the delivery activity and never logged; the workflow and the
logs know a channel by its name alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from changegate.models import PAGED_SEVERITIES, IncidentSeverity, NoticeKind

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, pattern=_NAME)
    """How history and logs name the channel; by default `<kind>-<position>`."""
    events: list[NoticeKind] | None = None
    """The notices this channel takes; every kind when unset."""

    def takes(self, kind: NoticeKind, severity: IncidentSeverity | None) -> bool:
        """True when a notice of `kind` (and `severity`) goes to this channel."""
        return self.events is None or kind in self.events


class WebhookChannel(_Channel):
    """A generic JSON webhook: the notice itself, plus links, POSTed as JSON."""

    kind: Literal["webhook"] = "webhook"
    url: SecretStr


class SlackChannel(_Channel):
    """A Slack-compatible incoming webhook: text plus blocks."""

    kind: Literal["slack"] = "slack"
    url: SecretStr


class PagerDutyChannel(_Channel):
    """A PagerDuty Events v2-compatible endpoint; triggered for SEV1 and SEV2 only."""

    kind: Literal["pagerduty"] = "pagerduty"
    url: SecretStr
    """The Events v2 enqueue endpoint of your PagerDuty account (or a compatible one)."""
    routing_key: SecretStr

    def takes(self, kind: NoticeKind, severity: IncidentSeverity | None) -> bool:
        """Only notices of a paging severity (SEV1, SEV2), among the subscribed kinds."""
        return severity in PAGED_SEVERITIES and super().takes(kind, severity)


Channel = Annotated[WebhookChannel | SlackChannel | PagerDutyChannel, Field(discriminator="kind")]


def named(channels: Sequence[Channel]) -> dict[str, Channel]:
    """The channels by name (`<kind>-<position>` when unnamed); a repeated name is an error."""
    found: dict[str, Channel] = {}
    for index, channel in enumerate(channels):
        name = channel.name or f"{channel.kind}-{index}"
        if name in found:
            raise ValueError(
                f"notify channel names must be unique; {name!r} is used twice "
                "(give each channel its own `name`)"
            )
        found[name] = channel
    return found


def subscribed(channels: Sequence[Channel]) -> list[NoticeKind]:
    """Every notice kind at least one channel may take: what the workflow sends at all."""
    kinds = {kind for c in channels for kind in (c.events or list(NoticeKind))}
    return [kind for kind in NoticeKind if kind in kinds]
