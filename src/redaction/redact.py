"""Redact secrets from text, JSON values and change requests before they are stored or shown."""

from __future__ import annotations

from collections.abc import Collection, Iterator

from pydantic import JsonValue

from changegate.models import ChangeRequest
from changegate.redaction.detectors import detected_spans
from changegate.redaction.patterns import MASK, SECRET_KEY, VALUE_PATTERNS


def redact_text(text: str) -> str:
    """`text` with every secret-looking run replaced by the mask."""
    spans = sorted(_spans(text))
    if not spans:
        return text
    out: list[str] = []
    at = 0
    for start, end in spans:
        if end <= at:
            continue
        if start >= at:
            out.append(text[at:start])
            out.append(MASK)
        # An overlapping span widens the one already masked.
        at = end
    out.append(text[at:])
    return "".join(out)


def _spans(text: str) -> Iterator[tuple[int, int]]:
    yield from detected_spans(text)
    for _, pattern in VALUE_PATTERNS:
        secret = pattern.groupindex.get("secret")
        for match in pattern.finditer(text):
            span = match.span(secret) if secret else match.span()
            if span[0] >= 0 and span[1] > span[0]:
                yield span


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


def redact_optional(text: str | None) -> str | None:
    """`redact_text` for a field that may be absent."""
    return None if text is None else redact_text(text)


def redact_request(request: ChangeRequest, *, secret_keys: Collection[str] = ()) -> ChangeRequest:
    """The request with secrets removed from every free-text field it carries.

    That is the agent's model, session and principal, the intent, the target's selector
    values, parameters, assumptions and evidence. `secret_keys` are parameter names a
    provider declares secret, masked whatever they hold. `agent_id`, the operation and the
    metrics are names held to a strict pattern, and are not free text.
    """
    raw = request.model_dump(mode="json")
    for field in ("model", "session_id", "on_behalf_of"):
        raw["agent"][field] = redact_optional(raw["agent"][field])
    raw["intent"] = redact_text(raw["intent"])
    raw["target"]["selector"] = {k: redact_text(v) for k, v in raw["target"]["selector"].items()}
    raw["change"]["parameters"] = redact_value(raw["change"]["parameters"], secret_keys=secret_keys)
    raw["assumptions"] = redact_value(raw["assumptions"], secret_keys=secret_keys)
    for evidence in raw["evidence"]:
        for field in ("source", "excerpt", "digest"):
            evidence[field] = redact_optional(evidence.get(field))
    return ChangeRequest.model_validate(raw)
