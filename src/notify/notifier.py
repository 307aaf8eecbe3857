"""The notifier: picks the channels a notice goes to, and posts it to one of them.

It holds the worker's channels (with their secrets) and never lets a URL or key into an
error message or a log line: failures name the channel and the HTTP status only, and
httpx's own request log shows a channel's name where its URL would be.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from changegate.http_pool import HttpPool
from changegate.models import Notice
from changegate.notify.channels import Channel, PagerDutyChannel, SlackChannel
from changegate.notify.payloads import pagerduty_payload, slack_payload, webhook_payload

if TYPE_CHECKING:  # settings import the channels of this package
    from changegate.settings import Settings

log = logging.getLogger(__name__)

POST_TIMEOUT_SECONDS = 10.0

# Answers that a later attempt may turn into a success; any other 4xx is the channel's
# configuration refusing the notice, which retrying cannot fix.
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class _ChannelUrlMask(logging.Filter):
    """Rewrites httpx's request log lines so a channel's URL reads as the channel's name."""

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def add(self, url: str, name: str) -> None:
        for form in {url, str(httpx.URL(url))}:
            self._names[form] = f"<notify channel {name}>"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for url, name in self._names.items():
            masked = masked.replace(url, name)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_URL_MASK = _ChannelUrlMask()
logging.getLogger("httpx").addFilter(_URL_MASK)


class DeliveryFailed(Exception):
    """A channel did not take a notice; `permanent` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        """`message` names the channel and why, never its URL or key."""
        super().__init__(message)
        self.permanent = permanent


class Notifier:
    """The worker's channels, and how to post a notice to each."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        *,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Post to `channels`, linking to the pages `settings` names."""
        self._channels = dict(channels)
        for name, channel in self._channels.items():
            _URL_MASK.add(channel.url.get_secret_value(), name)
        self._settings = settings
        self._pool = HttpPool(timeout=POST_TIMEOUT_SECONDS, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        """The channels the settings configure (none: a notifier that sends nothing)."""
        return cls(settings.channels(), settings=settings)

    def channels_for(self, notice: Notice) -> list[str]:
        """Names of the channels that take `notice`."""
        return [
            name
            for name, channel in self._channels.items()
            if channel.takes(notice.kind, notice.severity)
        ]

    def links(self, notice: Notice) -> dict[str, str]:
        """The approval page and the Temporal UI page of the notice's change, if any."""
        if not notice.change_id:
            return {}
        return {
            "approval_page": self._settings.page_url(notice.change_id),
            "temporal_ui": self._settings.workflow_url(notice.change_id),
        }

    def payload(self, notice: Notice, name: str) -> dict[str, Any]:
        """The body channel `name` is sent for `notice`."""
        channel = self._channel(name)
        links = self.links(notice)
        if isinstance(channel, PagerDutyChannel):
            key = channel.routing_key.get_secret_value()
            return pagerduty_payload(notice, links, routing_key=key)
        if isinstance(channel, SlackChannel):
            return slack_payload(notice, links)
        return webhook_payload(notice, links)

    async def send(self, notice: Notice, name: str) -> int:
        """Post `notice` to channel `name`; its HTTP status, or `DeliveryFailed`."""
        channel = self._channel(name)
        body = self.payload(notice, name)
        headers = {"Idempotency-Key": notice.event_id}
        try:
            response = await self._pool.client().post(
                channel.url.get_secret_value(), json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            # The exception's text may quote the URL, whose path is the webhook's token.
            raise DeliveryFailed(
                f"channel {name} could not be reached ({type(exc).__name__})", permanent=False
            ) from None
        status = response.status_code
        if status >= 400:
            permanent = status < 500 and status not in _RETRYABLE_STATUS
            raise DeliveryFailed(f"channel {name} answered HTTP {status}", permanent=permanent)
        log.info("notice %s (%s) delivered to %s", notice.event_id, notice.kind.value, name)
        return status

    async def aclose(self) -> None:
        """Close the pooled HTTP client."""
        await self._pool.aclose()

    def _channel(self, name: str) -> Channel:
        try:
            return self._channels[name]
        except KeyError:
            raise DeliveryFailed(
                f"no notify channel {name!r} on this worker; it has "
                f"{', '.join(self._channels) or 'none'} (set CHANGEGATE_NOTIFY_CHANNELS alike "
                "on every worker)",
                permanent=True,
            ) from None
