"""What a secret looks like where no maintained detector knows the shape.

Token shapes with a vendor prefix come from `detect-secrets` (see `detectors`); these are the
structural forms around a secret (assignments, headers, URLs, prose, PEM blocks) and the few
shapes its plugins miss. A pattern's `secret` group, when it has one, is the part masked, so
the name or header that says what was there survives.
"""

from __future__ import annotations

import re

MASK = "[REDACTED]"

# A name that ends in one of these holds a secret: `DB_PASSWORD`, `AWS_SECRET_ACCESS_KEY`,
# `X-Api-Key`. Only the end counts, so `token_ttl_seconds` and `max_tokens` are not secret.
_SECRET_WORD = (
    r"(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|secret[_-]?key|private[_-]?key|credentials?|client[_-]?secret|session[_-]?key)"
)
# Not `\b`: the names worth catching are snake_case, and `\b` never matches after `_`.
_NAME_START = r"(?<![A-Za-z0-9_.-])"
# A value already masked, or a reference such as `${DB_PASSWORD}`, is left as it is.
_VALUE = r"(?![=>]|\[REDACTED\]|\$\{|\{\{)(?P<secret>\"[^\"\n]*\"|'[^'\n]*'|[^\s,;\"'}\]]+)"

VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
            r".*?(?:-----END (?P=kind)-----|\Z)",
            re.S,
        ),
    ),
    ("putty-key", re.compile(r"PuTTY-User-Key-File-\d:.*?(?:Private-MAC:[^\n]*|\Z)", re.S)),
    # detect-secrets' JWT pattern stops before the signature; this one takes all three parts.
    (
        "jwt",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ),
    ("github-pat", re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,}")),
    # OpenAI-, Anthropic- and Stripe-test-style keys without the marker detect-secrets expects.
    ("sk-key", re.compile(r"(?<![A-Za-z0-9_-])(?:sk|rk)[-_](?:[a-z]+[-_])?[A-Za-z0-9_-]{20,}")),
    (
        "authorization-header",
        re.compile(
            r"(?i)(?<![A-Za-z0-9_-])(?:proxy-)?authorization\s*[:=]\s*"
            r"(?:(?:basic|bearer|digest|negotiate|token|apikey)\s+)?(?P<secret>[^\s,;\"']+)"
        ),
    ),
    (
        "cookie-header",
        re.compile(r"(?i)(?<![A-Za-z0-9_-])(?:set-)?cookie\s*:\s*(?P<secret>[^\n]+)"),
    ),
    (
        "scheme-credential",
        re.compile(r"(?i)\b(?:bearer|basic|token)\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
    ),
    # A password already masked (`***`, as SQLAlchemy prints URLs) is left as it is.
    (
        "url-credentials",
        re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<secret>(?!\*+@)[^\s@/]+)@"),
    ),
    (
        "assignment",
        re.compile(
            rf"(?i){_NAME_START}[A-Za-z0-9_.-]*?{_SECRET_WORD}[\"']?\s*(?:=>|:=|=|:)\s*{_VALUE}"
        ),
    ),
    (
        # "the admin password is hunter2", "db secret was: s3cr3t"; a value of a short plain
        # word ("the password is rotated") reads as prose, not as a password.
        "prose",
        re.compile(
            r"(?i)(?<![A-Za-z0-9])(?:password|passwd|passphrase|secret|token|api key|pin)\s+"
            r"(?:is|was|=|:)\s*:?\s+(?:now\s+|still\s+|set\s+to\s+)?"
            r"(?P<secret>\"[^\"\n]+\"|'[^'\n]+'"
            r"|(?=[^\s,;]*[^A-Za-z\s,;.!?]|[A-Za-z]{8})[^\s,;]+?)(?=[.!?]*(?:[\s,;]|\Z))"
        ),
    ),
)

# Keys whose values are secret whatever they hold; as with names above, only the end counts.
SECRET_KEY = re.compile(rf"(?i)(?:{_SECRET_WORD}|authorization|cookie)$")
