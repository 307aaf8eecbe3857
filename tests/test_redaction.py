"""Secrets are redacted from text, JSON values, requests and log records; near-misses are not."""

from __future__ import annotations

import logging
import sys

import pytest

from changegate.redaction import MASK, redact_request, redact_text, redact_value
from changegate.redaction.logs import redact_record
from tests.support import make_request

# Built from parts so that no scanner takes this file for a leak.
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIA" + "ABCDEFGHIJKLMNOP"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
PEM_BODY = "MIIEpAIBAAKCAQEA7bq" + "98s7d6f5g4h3j2k1"
BEGIN, END = "-----BEGIN", "-----END"

# (text carrying a secret, the secret that must not survive)
CORPUS: list[tuple[str, str]] = [
    # assignments whose name ends in a secret word, including snake_case after `_`
    ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2"),
    (f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    ("API_TOKEN=abc123def456", "abc123def456"),
    ("GITHUB_TOKEN: 'tok-9f8e7d6c'", "tok-9f8e7d6c"),
    ('{"client_secret": "cs-77aa88bb99"}', "cs-77aa88bb99"),
    ("app.secret_key = Zx9!qw7&er", "Zx9!qw7&er"),
    ("X-Api-Key: 0a1b2c3d4e5f", "0a1b2c3d4e5f"),
    ("redis_passwd=r3d1s pool_size=24", "r3d1s"),
    ("SMTP_PASSPHRASE => 'open sesame 42'", "open sesame 42"),
    ("db password=hunter2hunter2; api_key: 'abc123'", "abc123"),
    # headers
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("curl -H 'Authorization: Bearer abcdefghijklmnopqrstu'", "abcdefghijklmnopqrstu"),
    ("proxy-authorization: Digest a1b2c3d4e5f6a7b8", "a1b2c3d4e5f6a7b8"),
    ("Cookie: session=9f8e7d6c5b4a; theme=dark", "9f8e7d6c5b4a"),
    ("use token q1w2e3r4t5y6u7i8o9p0 for the call", "q1w2e3r4t5y6u7i8o9p0"),
    # URL credentials
    ("postgres://app:s3cretpw@db:5432/x", "s3cretpw"),
    ("https://deploy:Pa55w0rd!@git.example.com/repo.git", "Pa55w0rd!"),
    # vendor token shapes (detect-secrets plugins)
    (f"found {AWS} in the runbook", AWS),
    (f"GH={TOKEN}", TOKEN),
    ("glpat-" + "xYz12345678901234567", "xYz12345678901234567"),
    ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dcAbCdEfGh", "4eC39HqLyjWDarjtT1zdp7dcAbCdEfGh"),
    ("rk_live_" + "51H8gT2eZvKYlo2C0aBcDeFgHiJk", "51H8gT2eZvKYlo2C0aBcDeFgHiJk"),
    ("xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
    ("https://hooks.slack.com/services/T0001/B0002/" + "XXXXabcd1234", "XXXXabcd1234"),
    ("SG." + "a" * 22 + "." + "b" * 43, "b" * 43),
    ("twilio AC" + "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    (
        "bot 123456789:" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
    ),
    # shapes the plugins miss or cut short
    ("sk-" + "x" * 32, "x" * 32),
    ("sk-ant-api03-" + "Q9w8E7r6T5y4U3i2O1p0AsDf", "Q9w8E7r6T5y4U3i2O1p0AsDf"),
    ("github_pat_" + "11ABCDEFG0" * 5, "11ABCDEFG0" * 5),
    (f"session {JWT}", JWT.rsplit(".", 1)[1]),
    # private keys
    (f"{BEGIN} RSA PRIVATE KEY-----\n{PEM_BODY}\n{END} RSA PRIVATE KEY-----", PEM_BODY),
    (f"{BEGIN} OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n{END} OPENSSH PRIVATE KEY-----", PEM_BODY),
    (f"{BEGIN} EC PRIVATE KEY-----\n{PEM_BODY}", PEM_BODY),
    (
        f"{BEGIN} PGP PRIVATE KEY BLOCK-----\n\n{PEM_BODY}\n{END} PGP PRIVATE KEY BLOCK-----",
        PEM_BODY,
    ),
    # prose
    ("the admin password is hunter2", "hunter2"),
    ("The root password was: Tr0ub4dor&3.", "Tr0ub4dor&3"),
    ("fyi the DB_PASSWORD is now correcthorsebattery, rotate it", "correcthorsebattery"),
    ("the api key is 'k-93jd8'", "k-93jd8"),
]

NEAR_MISSES = [
    "commit 3f2a9c1b7e4d5f60718293a4b5c6d7e8f9012345 merged",
    "trace 123e4567-e89b-12d3-a456-426614174000",
    "image registry.example.com/checkout@sha256:"
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "raise pool_size=24 from 20; p99 is 640ms, 3 of 4 units healthy",
    "token_ttl_seconds=3600",
    "max_tokens: 4096",
    "password",
    "rotate the password",
    "the password is rotated weekly",
    "claude-opus-4-1-20250805",
    "checkout-7d9f8b6c5-x2k4q on 10.0.3.17:8080",
    "https://grafana.example.com/d/abc123?orgId=1",
    "secret_name: db-credentials-ref",
    "password: ${DB_PASSWORD}",
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize(("text", "secret"), CORPUS)
def test_every_secret_form_is_redacted(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out and MASK in out


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_survive_untouched(text: str) -> None:
    assert redact_text(text) == text


def test_assignments_keep_the_name_and_lose_the_value() -> None:
    out = redact_text("db password=hunter2hunter2; DB_PASSWORD: 'abc123'")
    assert out == f"db password={MASK}; DB_PASSWORD: {MASK}"


def test_redacting_twice_changes_nothing() -> None:
    for text, _ in CORPUS:
        once = redact_text(text)
        assert redact_text(once) == once


def test_url_credentials_keep_the_user() -> None:
    assert redact_text("postgres://app:s3cretpw@db:5432/x") == f"postgres://app:{MASK}@db:5432/x"


def test_secret_keys_are_masked_whatever_they_hold() -> None:
    value = {
        "db_password": "short",
        "nested": [{"token": 5}],
        "pool_size": 20,
        "token_ttl_seconds": 3600,
        "note": TOKEN,
    }
    assert redact_value(value) == {
        "db_password": MASK,
        "nested": [{"token": MASK}],
        "pool_size": 20,
        "token_ttl_seconds": 3600,
        "note": MASK,
    }
    assert redact_value({"license": "abc"}, secret_keys={"license"}) == {"license": MASK}


def test_plain_text_is_left_alone() -> None:
    text = "raise pool_size from 20 to 24; p99 is 640ms"
    assert redact_text(text) == text


def test_request_is_redacted_everywhere_it_carries_text() -> None:
    raw = make_request().model_dump(mode="json")
    raw["intent"] = f"rotate using token {TOKEN} please, it is urgent"
    raw["agent"]["model"] = f"gpt-x API_TOKEN={AWS_SECRET}"
    raw["agent"]["session_id"] = JWT
    raw["agent"]["on_behalf_of"] = "alice password is hunter2"
    raw["evidence"][0]["excerpt"] = f"found {AWS} in the runbook"
    raw["evidence"][0]["source"] = "https://ops:Pa55w0rd!@wiki.example.com/runbook"
    request = type(make_request()).model_validate(raw)
    redacted = redact_request(request)
    dumped = redacted.model_dump_json()
    for secret in (TOKEN, AWS, AWS_SECRET, JWT, "hunter2", "Pa55w0rd!"):
        assert secret not in dumped
    assert redacted.agent.session_id == MASK
    assert redacted.change == request.change
    assert redacted.target == request.target


def test_an_ordinary_agent_identity_is_kept() -> None:
    request = make_request()
    raw = request.model_dump(mode="json")
    raw["agent"]["model"] = "claude-opus-4-1-20250805"
    raw["agent"]["session_id"] = "123e4567-e89b-12d3-a456-426614174000"
    plain = type(request).model_validate(raw)
    assert redact_request(plain) == plain


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = sys.exc_info() if exc else None
    return logging.LogRecord("changegate.test", logging.INFO, __file__, 1, msg, args, exc_info)


def test_log_records_lose_secrets_in_message_arguments_and_tracebacks() -> None:
    record = redact_record(_record("calling with %s and %d retries", f"API_TOKEN={TOKEN}", 3))
    assert TOKEN not in record.getMessage() and "3 retries" in record.getMessage()
    try:
        raise RuntimeError(f"connect failed: postgres://app:s3cretpw@db/x {AWS}")
    except RuntimeError:
        failed = redact_record(_record("failed", exc=True))
    assert failed.exc_text is not None
    assert "s3cretpw" not in failed.exc_text and AWS not in failed.exc_text
    formatted = logging.Formatter().format(failed)
    assert "s3cretpw" not in formatted and "RuntimeError" in formatted
