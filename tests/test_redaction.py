"""Secrets are redacted from text, JSON values and requests."""

from __future__ import annotations

from changegate.redaction import MASK, redact_request, redact_text, redact_value
from tests.support import make_request

TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS = "AKIA" + "ABCDEFGHIJKLMNOP"


def test_known_token_shapes_are_redacted() -> None:
    for secret in (TOKEN, AWS, "xoxb-1234567890-abcdefghij", "sk-" + "x" * 32):
        out = redact_text(f"use {secret} now")
        assert secret not in out and MASK in out


def test_assignments_keep_the_name_and_lose_the_value() -> None:
    out = redact_text("db password=hunter2hunter2; api_key: 'abc123'")
    assert "hunter2" not in out and "abc123" not in out
    assert "password=" in out and "api_key:" in out


def test_url_credentials_and_bearer_tokens() -> None:
    out = redact_text(
        "postgres://app:s3cretpw@db:5432/x with Authorization: Bearer abcdefghijklmnopqrstu"
    )
    assert "s3cretpw" not in out and "abcdefghijklmnopqrstu" not in out
    assert "postgres://app:" in out


def test_secret_keys_are_masked_whatever_they_hold() -> None:
    value = {"db_password": "short", "nested": [{"token": 5}], "pool_size": 20, "note": TOKEN}
    assert redact_value(value) == {
        "db_password": MASK,
        "nested": [{"token": MASK}],
        "pool_size": 20,
        "note": MASK,
    }
    assert redact_value({"license": "abc"}, secret_keys={"license"}) == {"license": MASK}


def test_plain_text_is_left_alone() -> None:
    text = "raise pool_size from 20 to 24; p99 is 640ms"
    assert redact_text(text) == text


def test_request_is_redacted_everywhere_it_carries_text() -> None:
    request = make_request().model_copy(
        update={"intent": f"rotate using token {TOKEN} please, it is urgent"}
    )
    raw = request.model_dump(mode="json")
    raw["evidence"][0]["excerpt"] = f"found {AWS} in the runbook"
    redacted = redact_request(type(request).model_validate(raw))
    dumped = redacted.model_dump_json()
    assert TOKEN not in dumped and AWS not in dumped
    assert redacted.change == request.change
