"""Redact secrets from text, JSON values and change requests before they are stored or shown."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import JsonValue

from changegate.models import ChangeRequest
from changegate.redaction.patterns import MASK, SECRET_KEY, VALUE_PATTERNS


def redact_text(text: str) -> str:
    """`text` with every secret-looking run replaced by the mask."""
    for name, pattern in VALUE_PATTERNS:
        if name == "assignment":
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
        elif name == "url-credentials":
            text = pattern.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        elif name == "bearer":
            text = pattern.sub(lambda m: f"{m.group(1)} {MASK}", text)
        else:
            text = pattern.sub(MASK, text)
    return text


def redact_value(value: JsonValue, *, secret_keys: Collection[str] = ()) -> JsonValue:
    """A copy of `value` with secret keys masked and secret-looking strings redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact_value(v, secret_keys=secret_keys) for v in value]
    if isinstance(value, dict):
        return {
            k: MASK if _secret_key(k, secret_keys) else redact_value(v, secret_keys=secret_keys)
            for k, v in value.items()
        }
    return value


def _secret_key(key: str, declared: Collection[str]) -> bool:
    return key in declared or SECRET_KEY.search(key) is not None


def redact_request(request: ChangeRequest, *, secret_keys: Collection[str] = ()) -> ChangeRequest:
    """The request with secrets removed from intent, parameters, assumptions and evidence.

    `secret_keys` are parameter names a provider declares secret, masked whatever they hold.
    """
    raw = request.model_dump(mode="json")
    raw["intent"] = redact_text(raw["intent"])
    raw["change"]["parameters"] = redact_value(raw["change"]["parameters"], secret_keys=secret_keys)
    raw["assumptions"] = redact_value(raw["assumptions"], secret_keys=secret_keys)
    for evidence in raw["evidence"]:
        for field in ("source", "excerpt", "digest"):
            if evidence.get(field) is not None:
                evidence[field] = redact_text(evidence[field])
    return ChangeRequest.model_validate(raw)
