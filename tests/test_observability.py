"""The web UI's current details of a change, and the telemetry settings, without a server."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import ActivityEnvironment

from changegate.errors import ConfigurationError
from changegate.models import ChangeStatus, HaltCause, Outcome, Stage, UnitState
from changegate.observability import (
    breaker_tripped,
    exposition,
    traces_endpoint,
    worker_runtime,
)
from changegate.settings import Settings
from changegate.workflows.ledger import DETAILS_WIDTH, current_details
from tests.support import make_request


def _status(**update: object) -> ChangeStatus:
    status = ChangeStatus(change_id="chg-1", request=make_request(), stage=Stage.ROLLOUT)
    return status.model_copy(update=update)


def test_an_ended_change_leads_with_its_outcome_and_halt_reason() -> None:
    status = _status(
        stage=Stage.ENDED,
        outcome=Outcome.ROLLED_BACK,
        halt_cause=HaltCause.HEALTH_FAILED,
        halt_reason="canary health failed: error rate 0.3 > 0.05",
        units=[UnitState(unit_id="checkout-0", phase="canary", status="reverted")],
    )
    lines = current_details(status, ending="1 unit reverted and verified").splitlines()
    assert lines[0] == "**ROLLED_BACK**"
    assert lines[2] == "halted: canary health failed: error rate 0.3 > 0.05"
    assert lines[4] == "ended: 1 unit reverted and verified"
    assert "- checkout-0: reverted" in lines


def test_a_running_change_shows_its_stage_and_no_reason() -> None:
    text = current_details(_status(paused=True))
    assert text.splitlines()[0] == "**ROLLOUT** (paused)"
    assert "halted" not in text and "ended" not in text


def test_the_summary_is_hard_wrapped_in_a_fenced_block() -> None:
    long_line = "  blast radius: " + " ".join(f"checkout-{i}" for i in range(40))
    text = current_details(_status(summary=f"# title\n{long_line}\n\nshort\n"))
    body = text.split("```\n", 1)[1].rsplit("\n```", 1)[0].splitlines()
    assert body[0] == "# title"
    assert all(len(line) <= DETAILS_WIDTH for line in body)
    wrapped = [line for line in body if "checkout-" in line]
    assert len(wrapped) > 1
    assert all(line.startswith("    ") for line in wrapped[1:])  # continuations indented
    joined = " ".join(line.strip() for line in wrapped)
    assert joined == long_line.strip()
    assert "" in body and body[-1] == "short"


@pytest.mark.parametrize(
    ("ours", "standard", "expected"),
    [
        (None, None, None),
        ("http://127.0.0.1:4318/", None, "http://127.0.0.1:4318/v1/traces"),
        (None, "http://127.0.0.1:4318", ""),
        ("", None, None),
    ],
)
def test_tracing_is_on_only_when_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch, ours: str | None, standard: str | None, expected: str | None
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    if standard is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", standard)
    assert traces_endpoint(Settings(otlp_endpoint=ours)) == expected


def test_a_busy_worker_metrics_port_is_one_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(ConfigurationError) as raised:
            worker_runtime(Settings(worker_metrics_address=address))
    assert address in str(raised.value)
    assert "CHANGEGATE_WORKER_METRICS_ADDRESS" in str(raised.value)


def test_worker_metrics_are_off_by_default() -> None:
    assert worker_runtime(Settings()) is None


def _sample(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_a_breaker_trip_counts_in_the_api_and_inside_an_activity() -> None:
    labels = {"agent": "agent-7", "trigger": "rollbacks_in_a_row"}
    name = "changegate_breaker_trips_total"
    before = _sample(exposition().decode(), name, **labels)
    breaker_tripped(**labels)
    assert _sample(exposition().decode(), name, **labels) == before + 1

    # Inside an activity the worker's runtime exports it under the same name.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    runtime = worker_runtime(Settings(worker_metrics_address=address))
    assert runtime is not None
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    env.run(lambda: breaker_tripped(**labels))
    scraped = httpx.get(f"http://{address}/metrics", timeout=10).text
    assert _sample(scraped, name, **labels) == 1
    assert _sample(exposition().decode(), name, **labels) == before + 1
