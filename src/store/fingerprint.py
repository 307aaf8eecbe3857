"""A stable hash of what a change does, so the same change resubmitted is recognised."""

from __future__ import annotations

import hashlib
import json

from pydantic import JsonValue

from changegate.models import ChangeRequest


def fingerprint(request: ChangeRequest) -> str:
    """The sha256 hex of target kind, selector, operation and parameters, canonically encoded.

    Intent, evidence, assumptions and rollout settings are left out: rewording why a change is
    wanted does not make it a different change.
    """
    subject: JsonValue = {
        "kind": request.target.kind,
        "selector": dict(request.target.selector),
        "operation": request.change.operation,
        "parameters": _canonical(request.change.parameters),
    }
    encoded = json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _canonical(value: JsonValue) -> JsonValue:
    # 3 and 3.0 are the same parameter value once it reaches a target.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value
