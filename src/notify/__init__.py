"""Notifications: channels, their payloads, the notifier, and publishing from the front door."""

from changegate.notify.channels import (
    Channel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    named,
    subscribed,
)
from changegate.notify.notifier import DeliveryFailed, Notifier
from changegate.notify.payloads import pagerduty_payload, slack_payload, webhook_payload
from changegate.notify.publish import OPERATION_KINDS, notify_hook, operation_notice, publish

__all__ = [
    "OPERATION_KINDS",
    "Channel",
    "DeliveryFailed",
    "Notifier",
    "PagerDutyChannel",
    "SlackChannel",
    "WebhookChannel",
    "named",
    "notify_hook",
    "operation_notice",
    "pagerduty_payload",
    "publish",
    "slack_payload",
    "subscribed",
    "webhook_payload",
]
