"""changegate's own telemetry, served for real: the API's and a worker's Prometheus metrics
after a change ran on the dev server, spans at a real OTLP/HTTP receiver, the Grafana
dashboard's queries against what both endpoints export, and the web UI's current details.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from changegate.api import running_api
from changegate.models import Stage
from changegate.observability import flush_traces, worker_runtime
from changegate.service import ChangeService, connect
from changegate.settings import Settings
from changegate.worker import running_worker
from changegate.workflows.ledger import DETAILS_WIDTH
from tests.support import approve_fully, free_port, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "changegate.json"


@dataclass
class Receiver:
    """A tiny OTLP/HTTP trace receiver on loopback: it keeps every span it is sent."""

    url: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def names(self) -> set[str]:
        with self.lock:
            return {s["name"] for s in self.spans}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server: ThreadingHTTPServer
    found = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            with found.lock:
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            found.spans.append(
                                {
                                    "name": span.name,
                                    "trace": span.trace_id.hex(),
                                    "service": service.get("service.name"),
                                    "attributes": {
                                        a.key: a.value.string_value for a in span.attributes
                                    },
                                }
                            )
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Observed:
    """The stack under observation: its settings, its API, and the change it ran."""

    settings: Settings
    api: str
    worker_metrics: str
    client: Client
    changes: ChangeService
    change_id: str = ""


@pytest.fixture(scope="module")
async def observed(
    temporal: WorkflowEnvironment,
    settings: Settings,
    receiver: Receiver,
    worker: object,
) -> AsyncIterator[Observed]:
    """A worker serving metrics and a traced API, both on a client `connect` made, on a task
    queue of their own; one change run through them to DONE."""
    port = free_port()
    ours = settings.model_copy(
        update={
            "task_queue": f"obs-{uuid.uuid4().hex[:8]}",
            "worker_metrics_address": f"127.0.0.1:{port}",
            "otlp_endpoint": receiver.url,
        }
    )
    client = await connect(ours, runtime=worker_runtime(ours))
    changes = ChangeService(client, ours)
    try:
        async with (
            running_worker(client, ours),
            running_api(settings=ours, changes=changes, port=0) as api,
        ):
            yield Observed(ours, api, f"http://127.0.0.1:{port}/metrics", client, changes)
    finally:
        changes.close()
        flush_traces()  # while the receiver still listens


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(text: str, sample: str, **labels: str) -> float:
    """The sum of `sample`'s values whose labels include `labels` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _exported_names(text: str) -> set[str]:
    """Every series name an exposition declares, with the suffixes its type implies."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture(scope="module")
async def done(
    observed: Observed, cli_tokens: dict[str, str], fleet_process: str, receiver: Receiver
) -> Observed:
    """One change submitted through the API, approved, and run to DONE."""
    body = make_request().model_dump(mode="json")
    async with httpx.AsyncClient(base_url=observed.api, timeout=30) as http:
        response = await http.post(
            "/api/v1/changes",
            json=body,
            headers={"Authorization": f"Bearer {cli_tokens['agent-7']}"},
        )
    assert response.status_code == 201, response.text
    change_id: str = response.json()["change_id"]
    await wait_for_stage(observed.changes, change_id, Stage.AWAITING_APPROVAL, within=60)
    await approve_fully(observed.changes, change_id)
    await observed.client.get_workflow_handle(change_id).result()
    status = await observed.changes.status(change_id)
    assert status.outcome is not None and status.outcome.value == "DONE", status.halt_reason
    observed.change_id = change_id
    return observed


async def test_the_worker_exports_the_change_and_the_sdk_metrics(done: Observed) -> None:
    async def recorded() -> bool:
        text = await _scrape(done.worker_metrics)
        return _value(text, "changegate_changes_total", outcome="DONE") >= 1

    await wait_until(recorded, within=20, interval=0.5, what="the outcome counted")
    text = await _scrape(done.worker_metrics)
    queue = {"task_queue": done.settings.task_queue}
    assert _value(text, "changegate_changes_total", outcome="DONE", agent="agent-7", **queue) == 1
    for stage in ("RECON", "VALIDATE", "SUMMARY", "AWAITING_APPROVAL", "CANARY", "VERIFY"):
        count = _value(text, "changegate_stage_duration_seconds_count", stage=stage, **queue)
        assert count >= 1, stage
    assert _value(text, "changegate_approval_wait_seconds_count", result="approved", **queue) == 1
    verdicts = _value(text, "changegate_analysis_verdicts_total", phase="successful", **queue)
    assert verdicts >= 2  # the canary's gate and at least one wave's
    # Stages and approvals last minutes to hours: the buckets reach a day.
    bounds = {
        float(s.labels["le"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "changegate_approval_wait_seconds_bucket"
    }
    assert {1.0, 3600.0, 86400.0} <= bounds
    # The Temporal SDK's own series come from the same runtime.
    temporal = {n for n in _exported_names(text) if n.startswith("temporal_")}
    assert "temporal_workflow_completed_total" in temporal
    assert any(n.startswith("temporal_activity_execution_latency") for n in temporal)
    # Labels hold bounded values only: nothing the agent wrote but its id.
    request = make_request()
    assert request.intent not in text and "dashboard/checkout" not in text


async def test_the_api_counts_refusals_by_rule_and_times_requests(
    done: Observed, cli_tokens: dict[str, str]
) -> None:
    before = await _scrape(done.api + "/metrics")
    body = make_request(service="inventory").model_dump(mode="json")
    body["target"]["kind"] = "no-such-kind"
    async with httpx.AsyncClient(base_url=done.api, timeout=30) as http:
        refused = await http.post(
            "/api/v1/changes",
            json=body,
            headers={"Authorization": f"Bearer {cli_tokens['agent-7']}"},
        )
        assert refused.status_code >= 400, refused.text
        read = await http.get(
            f"/api/v1/changes/{done.change_id}",
            headers={"Authorization": f"Bearer {cli_tokens['agent-7']}"},
        )
        assert read.status_code == 200, read.text
        rule = refused.json()["error"]["rule"]
        unauthenticated = await http.get("/metrics")  # no token, like /healthz
    assert unauthenticated.status_code == 200
    assert unauthenticated.headers["content-type"].startswith("text/plain")
    after = unauthenticated.text
    refusals = "changegate_admission_refusals_total"
    assert _value(after, refusals, rule=rule) == _value(before, refusals, rule=rule) + 1
    # Requests are labelled by route template, never by the path with its change id.
    route = "/api/v1/changes/{change_id}"
    assert _value(after, "changegate_api_request_duration_seconds_count", route=route) >= 1
    assert done.change_id not in after
    assert (
        _value(
            after,
            "changegate_api_request_duration_seconds_count",
            method="POST",
            route="/api/v1/changes",
            status="201",
        )
        >= 1
    )
    families = _families(after)
    assert families["changegate_breaker_trips"].type == "counter"
    assert "process_resident_memory_bytes" in _exported_names(after)


async def test_spans_of_the_change_reach_the_otlp_receiver(
    done: Observed, receiver: Receiver
) -> None:
    def arrived() -> bool:
        flush_traces()
        return {
            "StartWorkflow:ChangeWorkflow",
            "RunWorkflow:ChangeWorkflow",
            "RunActivity:observe_target",
            "RunActivity:apply_unit",
        } <= receiver.names()

    await wait_until(arrived, within=30, interval=0.5, what="the change's spans")
    with receiver.lock:
        ours = [
            s for s in receiver.spans if s["attributes"].get("temporalWorkflowID") == done.change_id
        ]
    started = [s for s in ours if s["name"] == "StartWorkflow:ChangeWorkflow"]
    assert len(started) == 1
    # The API's start, the workflow and its activities are one trace (a signal or a query
    # from a client is a trace of its own).
    trace = started[0]["trace"]
    run = [s for s in ours if s["name"].startswith(("RunWorkflow:", "RunActivity:"))]
    assert {s["trace"] for s in run} == {trace}
    assert {s["service"] for s in ours} == {"changegate"}
    names = {s["name"] for s in run}
    assert {"RunActivity:assess_change", "RunActivity:verify_units"} <= names


def _queried_names(dashboard: dict[str, Any]) -> set[str]:
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    assert exprs, "the dashboard has no queries"
    return {name for expr in exprs for name in re.findall(r"\b((?:changegate|temporal)_\w+)", expr)}


async def test_every_metric_the_dashboard_queries_is_exported(done: Observed) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["panels"]
    exported = _exported_names(await _scrape(done.worker_metrics)) | _exported_names(
        await _scrape(done.api + "/metrics")
    )
    queried = _queried_names(dashboard)
    assert {n for n in queried if n.startswith("changegate_")} >= {
        "changegate_changes_total",
        "changegate_stage_duration_seconds_bucket",
        "changegate_approval_wait_seconds_bucket",
        "changegate_analysis_verdicts_total",
        "changegate_admission_refusals_total",
        "changegate_breaker_trips_total",
    }
    assert queried - exported == set()


async def test_current_details_lead_with_the_outcome_and_wrap(done: Observed) -> None:
    handle = done.client.get_workflow_handle(done.change_id)
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    lines = metadata.current_details.splitlines()
    assert lines[0] == "**DONE**"
    assert lines[2].startswith("ended: ") and "verified" in lines[2]
    assert "- checkout-0: verified" in metadata.current_details  # one line per unit
    opening = lines.index("```")
    assert lines[-1] == "```" and opening < len(lines) - 2
    assert max(len(line) for line in lines[opening + 1 : -1]) <= DETAILS_WIDTH


async def test_changegate_worker_serves_metrics_at_its_address(
    settings: Settings, tmp_path: Path
) -> None:
    """The real `changegate worker` process, with the address set in its environment."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHANGEGATE_", "OTEL_"))},
        "CHANGEGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "CHANGEGATE_TASK_QUEUE": f"obs-cli-{uuid.uuid4().hex[:8]}",
        "CHANGEGATE_DATA_DIR": str(tmp_path),
        "CHANGEGATE_POLICY_FILE": str(settings.policy_file),
        "CHANGEGATE_WORKER_METRICS_ADDRESS": address,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "changegate", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        async def serving() -> str | None:
            assert process.poll() is None, log.read_text()
            try:
                text = await _scrape(f"http://{address}/metrics")
            except httpx.HTTPError:
                return None
            # Pollers report their slots once the worker runs on its task queue.
            return text if "temporal_worker_task_slots_available" in text else None

        text = await wait_until(serving, within=60, interval=0.5, what="the worker's metrics")
        assert (
            _value(
                text,
                "temporal_worker_task_slots_available",
                **{"task_queue": env["CHANGEGATE_TASK_QUEUE"]},
            )
            > 0
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
