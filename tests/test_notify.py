"""The notifier's rules without a server: settings, channel choice, payloads, failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from changegate.models import IncidentSeverity, Notice, NoticeKind, Outcome
from changegate.notify import DeliveryFailed, Notifier, operation_notice, pagerduty_payload
from changegate.settings import Settings

HOOK = "http://127.0.0.1:9/services/T000/B000/s3cr3tT0ken"


def notice(**fields: object) -> Notice:
    base: dict[str, object] = {
        "event_id": "notice-chg-1-rolled_back-9",
        "kind": NoticeKind.ROLLED_BACK,
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "title": "chg-1 on fleet:service=payments: ROLLED_BACK: canary failed",
        "change_id": "chg-1",
        "target": "fleet:service=payments",
        "outcome": Outcome.ROLLED_BACK,
    }
    return Notice.model_validate({**base, **fields})


def test_channels_come_from_a_json_list_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channels = [
        {"kind": "slack", "url": HOOK, "events": ["awaiting_approval"]},
        {"kind": "pagerduty", "name": "oncall", "url": HOOK, "routing_key": "rk-1"},
    ]
    monkeypatch.setenv("CHANGEGATE_NOTIFY_CHANNELS", json.dumps(channels))
    monkeypatch.setenv("CHANGEGATE_ESCALATION_WEBHOOK", HOOK)
    settings = Settings()
    assert list(settings.channels()) == ["slack-0", "oncall", "escalation-webhook"]
    assert settings.notify_kinds() == list(NoticeKind)
    assert "s3cr3tT0ken" not in repr(settings) and "rk-1" not in repr(settings)


def test_without_channels_no_kind_is_sent() -> None:
    assert Settings(notify_channels=[], escalation_webhook=None).notify_kinds() == []


def test_a_repeated_channel_name_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="'ops' is used twice"):
        Settings.model_validate(
            {
                "notify_channels": [
                    {"kind": "webhook", "name": "ops", "url": HOOK},
                    {"kind": "slack", "name": "ops", "url": HOOK},
                ]
            }
        )


def test_paging_is_for_sev1_and_sev2_only() -> None:
    settings = Settings.model_validate(
        {
            "notify_channels": [
                {"kind": "pagerduty", "name": "pd", "url": HOOK, "routing_key": "rk"},
                {"kind": "webhook", "name": "hook", "url": HOOK, "events": ["blocked"]},
            ]
        }
    )
    notifier = Notifier.from_settings(settings)
    for severity, channels in [
        (IncidentSeverity.SEV1, ["pd"]),
        (IncidentSeverity.SEV2, ["pd"]),
        (IncidentSeverity.SEV3, []),
        (None, []),
    ]:
        assert notifier.channels_for(notice(severity=severity)) == channels
    assert notifier.channels_for(notice(kind=NoticeKind.BLOCKED)) == ["hook"]


def test_the_pagerduty_event_is_deduplicated_by_event_id() -> None:
    body = pagerduty_payload(
        notice(severity=IncidentSeverity.SEV1),
        {"temporal_ui": "http://127.0.0.1/x"},
        routing_key="rk",
    )
    assert body["dedup_key"] == "notice-chg-1-rolled_back-9"
    assert body["event_action"] == "trigger"
    assert body["payload"]["severity"] == "critical"
    assert body["client_url"] == "http://127.0.0.1/x"


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (400, True), (429, False), (500, False), (503, False)]
)
async def test_a_refusal_is_permanent_and_an_outage_is_not(status: int, permanent: bool) -> None:
    settings = Settings.model_validate(
        {"notify_channels": [{"kind": "webhook", "name": "hook", "url": HOOK}]}
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(status))
    notifier = Notifier(settings.channels(), settings=settings, transport=transport)
    with pytest.raises(DeliveryFailed) as failed:
        await notifier.send(notice(), "hook")
    assert failed.value.permanent is permanent
    assert str(failed.value) == f"channel hook answered HTTP {status}"
    await notifier.aclose()


class Tripped(BaseModel):
    kind: str
    agent_id: str
    trigger: str
    mode: str
    severity: str
    incident_id: str
    evidence: list[str]


def test_a_breaker_trip_becomes_a_notice_with_one_id_per_event() -> None:
    event = Tripped(
        kind="breaker_tripped",
        agent_id="agent-7",
        trigger="scope_refusals",
        mode="pause",
        severity="SEV2",
        incident_id="inc-brk-1",
        evidence=["refused fleet:service=ledger: API_TOKEN=abc123def456ghi789"],
    )
    first = operation_notice(event)
    assert first.title == "scope_refusals tripped for agent agent-7: pause"
    assert first.severity == IncidentSeverity.SEV2 and first.incident_id == "inc-brk-1"
    assert "abc123def456ghi789" not in json.dumps(first.details)
    assert operation_notice(event).event_id != first.event_id  # no `at`: each call is new


def test_an_event_of_another_kind_is_refused_naming_the_kinds() -> None:
    with pytest.raises(ValueError, match="must be one of breaker_tripped, kill_switch_engaged"):
        operation_notice(Tripped.model_construct(kind="blocked"))
