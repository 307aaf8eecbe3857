"""Contracts refuse bad input precisely: field path and reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from changegate.models import ChangeRequest
from tests.support import make_request


def errors(raw: dict[str, object]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        ChangeRequest.model_validate(raw)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in info.value.errors()}


def base() -> dict[str, object]:
    return make_request().model_dump(mode="json")


def test_valid_request_round_trips() -> None:
    raw = base()
    assert ChangeRequest.model_validate(raw).model_dump(mode="json") == raw


def test_unknown_fields_are_refused_not_dropped() -> None:
    raw = base()
    raw["rollout"]["canary_size"] = 2  # type: ignore[index]
    assert "rollout.canary_size" in errors(raw)


def test_failure_limit_must_be_below_count() -> None:
    raw = base()
    raw["rollout"].update(analysis_count=2, failure_limit=2)  # type: ignore[attr-defined]
    assert "failure_limit (2) must be below analysis_count (2)" in errors(raw)["rollout"]


def test_evidence_needs_an_excerpt_or_digest() -> None:
    raw = base()
    raw["evidence"] = [{"source": "dashboard"}]
    assert "excerpt or a digest" in errors(raw)["evidence.0"]


def test_assumption_keys_must_be_paths() -> None:
    raw = base()
    raw["assumptions"] = {"not a path!": 1}
    assert "is not an observation path" in errors(raw)["assumptions"]


def test_agent_id_and_target_kind_are_checked() -> None:
    raw = base()
    raw["agent"]["agent_id"] = "has spaces"  # type: ignore[index]
    raw["target"]["kind"] = "Fleet!"  # type: ignore[index]
    found = errors(raw)
    assert "agent.agent_id" in found and "target.kind" in found
