"""Vendor token shapes from the maintained `detect-secrets` plugins, as spans in a string.

Only the plugins that recognise a token by its own shape are used. The keyword plugin is
tuned for config files by file type and misses `API_TOKEN=…` and prose; the high-entropy
plugins only look inside quotes and would take commit SHAs and image digests for secrets;
the IP plugin finds addresses, which are not secrets; `patterns` covers those forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

PLUGINS: tuple[type[RegexBasedDetector], ...] = (
    AWSKeyDetector,
    AzureStorageKeyDetector,
    BasicAuthDetector,
    DiscordBotTokenDetector,
    GitHubTokenDetector,
    GitLabTokenDetector,
    MailchimpDetector,
    NpmDetector,
    OpenAIDetector,
    PypiTokenDetector,
    SendGridDetector,
    SlackDetector,
    SquareOAuthDetector,
    StripeDetector,
    TelegramBotTokenDetector,
    TwilioKeyDetector,
)

# A plugin's pattern may stop at a fixed length (Stripe's 24 characters, while live keys are
# longer): the mask runs on to the end of the token.
_TOKEN_TAIL = re.compile(r"(?:[A-Za-z0-9_+/=-]|\.(?=[A-Za-z0-9_-]))*")

# These plugins' first group is the secret and the rest says where it was (a URL's user).
_GROUPED: frozenset[type[RegexBasedDetector]] = frozenset({BasicAuthDetector})

_DENYLIST: tuple[tuple[re.Pattern[str], bool], ...] = tuple(
    (pattern, plugin in _GROUPED) for plugin in PLUGINS for pattern in plugin().denylist
)


def detected_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every run of `text` a plugin takes for a secret.

    Plugins report a secret's value without its place, and some report only a group of it
    (GitHub's reports `ghp`), so their patterns are matched here and the whole match masked.
    """
    for pattern, grouped in _DENYLIST:
        for match in pattern.finditer(text):
            if grouped:
                yield match.span(1)
                continue
            tail = _TOKEN_TAIL.match(text, match.end())
            yield match.start(), tail.end() if tail else match.end()
