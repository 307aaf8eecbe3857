"""PrometheusSource: its HTTP mapping against a mock, then end to end with a real Prometheus."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from changegate.errors import ConfigurationError, HealthSourceError
from changegate.health import PrometheusSource, classify
from changegate.models import Decision, HealthCheck, Measurement, MetricValue, Outcome, Stage
from changegate.policy import parse_policy
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.worker import running_worker
from tests.support import Fleet, free_port, make_request, wait_for_stage, wait_until

CHECKS = [
    HealthCheck(metric="error_rate", max=0.05),
    HealthCheck(metric="latency_p99_ms", max=250),
]
ERROR_RATE = [HealthCheck(metric="error_rate", max=0.05)]
CHECKOUT = ["checkout-0", "checkout-1", "checkout-2", "checkout-3"]

Handler = Callable[[httpx.Request], httpx.Response]


def vector(at: float, values: dict[str, float | str]) -> dict[str, Any]:
    """A successful instant-vector answer, one series per instance."""
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"instance": instance}, "value": [at, str(value)]}
                for instance, value in values.items()
            ],
        },
    }


def source(handler: Handler, **kwargs: Any) -> PrometheusSource:
    return PrometheusSource(
        "http://127.0.0.1:9090/", transport=httpx.MockTransport(handler), **kwargs
    )


def by_key(values: list[MetricValue]) -> dict[tuple[str, str], float | None]:
    return {(v.unit_id, v.metric): v.value for v in values}


# --- the HTTP mapping, against httpx.MockTransport -------------------------------------------


async def test_queries_each_metric_and_maps_the_vector_to_units() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        query = request.url.params["query"]
        at = float(request.url.params["time"])
        if query.startswith("1000 *"):
            return httpx.Response(200, json=vector(at, {"web-0": 120.5, "web-1": 90}))
        return httpx.Response(200, json=vector(at, {"web-0": 0.01, "web-1": 0.2}))

    values = await source(handler).measure({"service": "web"}, ["web-0", "web-1"], CHECKS)

    assert by_key(values) == {
        ("web-0", "error_rate"): 0.01,
        ("web-0", "latency_p99_ms"): 120.5,
        ("web-1", "error_rate"): 0.2,
        ("web-1", "latency_p99_ms"): 90.0,
    }
    assert [(v.unit_id, v.metric, v.max) for v in values] == [
        ("web-0", "error_rate", 0.05),
        ("web-0", "latency_p99_ms", 250),
        ("web-1", "error_rate", 0.05),
        ("web-1", "latency_p99_ms", 250),
    ]
    assert {r.url.path for r in seen} == {"/api/v1/query"}
    assert sorted(r.url.params["query"] for r in seen) == [
        '1000 * max by (instance) (fleet_latency_p99_seconds{service="web",'
        'instance=~"web-0|web-1"})',
        'max by (instance) (fleet_error_ratio{service="web",instance=~"web-0|web-1"})',
    ]
    # Both metrics are read at the same instant, so one measurement is one point in time.
    assert len({r.url.params["time"] for r in seen}) == 1


async def test_a_unit_absent_from_the_result_or_nan_is_missing_data() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        at = float(request.url.params["time"])
        return httpx.Response(200, json=vector(at, {"web-0": 0.0, "web-2": "NaN"}))

    values = await source(handler).measure(
        {"service": "web"}, ["web-0", "web-1", "web-2"], ERROR_RATE
    )

    assert by_key(values) == {
        ("web-0", "error_rate"): 0.0,
        ("web-1", "error_rate"): None,
        ("web-2", "error_rate"): None,
    }
    assert classify(values).phase == "inconclusive"


async def test_unit_ids_are_matched_literally() -> None:
    units = ["web.1", "a+b", "x|y", 'q"(z)']
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params["query"])
        return httpx.Response(200, json=vector(0, {}))

    await source(handler).measure({"service": 'we"b'}, units, ERROR_RATE)

    (query,) = queries
    assert 'service="we\\"b"' in query
    match = re.search(r'instance=~"((?:[^"\\]|\\.)*)"', query)
    assert match is not None
    # Undo the PromQL string escaping to get the regex Prometheus compiles (anchored, as it does).
    pattern = json.loads(f'"{match.group(1)}"')
    assert pattern == r'web\.1|a\+b|x\|y|q"\(z\)'
    for unit in units:
        assert re.fullmatch(pattern, unit)
    for other in ["webx1", "aab", "x", "y", 'q"z']:
        assert re.fullmatch(pattern, other) is None


async def test_error_status_is_a_health_source_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"status": "error", "errorType": "bad_data", "error": "parse error at 3"}
        )

    with pytest.raises(HealthSourceError) as caught:
        await source(handler).measure({"service": "web"}, ["web-0"], ERROR_RATE)

    message = str(caught.value)
    assert "HTTP 400" in message
    assert "bad_data: parse error at 3" in message
    assert "127.0.0.1:9090/api/v1/query" in message
    assert "check" in message
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


async def test_non_success_status_in_a_200_is_a_health_source_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "error", "error": "query timed out"})

    with pytest.raises(HealthSourceError, match=r"status 'error'.*query timed out"):
        await source(handler).measure({"service": "web"}, ["web-0"], ERROR_RATE)


async def test_server_error_is_a_health_source_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="upstream exploded")

    with pytest.raises(HealthSourceError, match=r"HTTP 500.*upstream exploded") as caught:
        await source(handler).measure({"service": "web"}, ["web-0"], ERROR_RATE)
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


async def test_unreachable_server_is_a_health_source_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(HealthSourceError, match="could not reach") as caught:
        await source(handler).measure({"service": "web"}, ["web-0"], ERROR_RATE)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>login</html>", "not JSON"),
        (b'["success"]', "not a JSON object"),
        (b'{"status": "success", "data": {"resultType": "matrix", "result": []}}', "matrix"),
        (b'{"status": "success", "data": {"resultType": "vector", "result": [{}]}}', "malformed"),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": '
            b'[{"metric": {"instance": "web-0"}, "value": [1, "many"]}]}}',
            "malformed",
        ),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": '
            b'[{"metric": {"job": "fleet"}, "value": [1, "0.1"]}]}}',
            "without an 'instance' label",
        ),
        (
            b'{"status": "success", "data": {"resultType": "vector", "result": ['
            b'{"metric": {"instance": "web-0", "outcome": "ok"}, "value": [1, "1"]},'
            b'{"metric": {"instance": "web-0", "outcome": "error"}, "value": [1, "2"]}]}}',
            "more than one series",
        ),
    ],
)
async def test_malformed_body_is_a_health_source_error(body: bytes, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    with pytest.raises(HealthSourceError, match=re.escape(reason)):
        await source(handler).measure({"service": "web"}, ["web-0"], ERROR_RATE)


async def test_samples_older_than_max_age_are_missing_data() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        at = float(request.url.params["time"])
        if "timestamp(" in query:
            return httpx.Response(200, json=vector(at, {"web-0": at - 2, "web-1": at - 120}))
        return httpx.Response(200, json=vector(at, {"web-0": 0.01, "web-1": 0.01, "web-2": 0}))

    values = await source(handler, max_age_seconds=30).measure(
        {"service": "web"}, ["web-0", "web-1", "web-2"], ERROR_RATE
    )

    assert by_key(values) == {
        ("web-0", "error_rate"): 0.01,
        ("web-1", "error_rate"): None,
        ("web-2", "error_rate"): None,
    }


async def test_custom_templates_and_kind() -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params["query"])
        return httpx.Response(200, json=vector(0, {"api-0": 0.5}))

    custom = source(
        handler,
        kind="k8s",
        queries={"error_rate": 'rate(errors{app="{service}",pod=~"{instances}"}[1m])'},
    )
    values = await custom.measure({"service": "api"}, ["api-0"], ERROR_RATE)

    assert custom.kind == "k8s"
    assert queries == ['rate(errors{app="api",pod=~"api-0"}[1m])']
    assert by_key(values) == {("api-0", "error_rate"): 0.5}
    with pytest.raises(ConfigurationError, match="latency_p99_ms"):
        await custom.measure({"service": "api"}, ["api-0"], CHECKS)


def test_max_age_needs_a_timestamp_query_for_every_metric() -> None:
    with pytest.raises(ConfigurationError, match=r"error_rate.*timestamp_queries"):
        PrometheusSource("http://127.0.0.1", queries={"error_rate": "up"}, max_age_seconds=10)
    assert PrometheusSource("http://127.0.0.1", max_age_seconds=10).kind == "fleet"


# --- end to end: a real Prometheus scraping the real fleet -----------------------------------


@pytest.fixture(scope="module")
def prometheus(fleet_process: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the session's fleet every second; its base URL."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).is_file():
        reason = (
            "prometheus is not installed: apt-get install -y --no-install-recommends prometheus"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("prometheus")
    fleet_target = fleet_process.removeprefix("http://")
    config = tmp / "prometheus.yml"
    # The fleet labels its own series with `instance`; honor_labels keeps that label instead of
    # renaming it to `exported_instance` in favour of the scrape target's address.
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: fleet\n"
        "    honor_labels: true\n"
        "    static_configs:\n"
        f"      - targets: ['{fleet_target}']\n"
    )
    url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp / "prometheus.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not become ready; see {log_path}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def live_source(prometheus: str) -> AsyncIterator[PrometheusSource]:
    # max_age exercises the timestamp queries against the real server as well.
    source = PrometheusSource(prometheus, max_age_seconds=10)
    yield source
    await source.aclose()


@pytest.mark.e2e
async def test_real_prometheus_sees_a_failing_instance(
    live_source: PrometheusSource, fleet: Fleet
) -> None:
    source = live_source
    selector = {"service": "checkout"}

    async def healthy() -> list[MetricValue] | None:
        values = await source.measure(selector, CHECKOUT, ERROR_RATE)
        ok = all(v.value is not None and v.value < 0.05 for v in values)
        return values if ok else None

    values = await wait_until(healthy, within=15, interval=0.25, what="healthy checkout scraped")
    assert [v.unit_id for v in values] == CHECKOUT
    assert classify(values).phase == "successful"

    fleet.set("checkout", "checkout-1", f"prometheus-e2e-{uuid.uuid4().hex}", version="latest")

    async def failing() -> list[MetricValue] | None:
        values = await source.measure(selector, CHECKOUT, ERROR_RATE)
        rates = {v.unit_id: v.value for v in values}
        assert rates["checkout-0"] is not None and rates["checkout-0"] < 0.05, rates
        failed = rates["checkout-1"]
        return values if failed is not None and failed > 0.5 else None

    values = await wait_until(failing, within=15, interval=0.25, what="checkout-1 failing")
    measurement = classify(values)
    assert measurement.phase == "failed"
    assert "checkout-1 error_rate" in measurement.reason
    assert "checkout-0" not in measurement.reason

    both = await source.measure(selector, ["checkout-0", "checkout-1"], CHECKS)
    latency = {v.unit_id: v.value for v in both if v.metric == "latency_p99_ms"}
    # Scaled to milliseconds: the fleet's healthy p99 is tens of ms, exported in seconds.
    assert all(value is not None and value > 1 for value in latency.values()), latency


@pytest.mark.e2e
async def test_canary_analysis_through_prometheus_rolls_back_a_bad_release(
    prometheus: str, client: Client, settings: Settings, fleet: Fleet
) -> None:
    """The whole pipeline with health judged by the real Prometheus scraping the fleet."""
    own = settings.model_copy(
        update={"task_queue": f"prom-{uuid.uuid4().hex[:6]}", "prometheus_url": prometheus}
    )
    rollout = {"analysis_interval_seconds": 1.5, "analysis_count": 2, "canary_bake_seconds": 1}
    async with running_worker(client, own):
        changes = ChangeService(client, own)
        try:
            bad = await changes.submit(
                make_request(
                    service="search",
                    assumptions={},
                    rollout=rollout,
                    parameters={"version": "latest"},
                )
            )
            await wait_for_stage(changes, bad, Stage.AWAITING_APPROVAL)
            await changes.approve(bad, Decision(actor="alice"))
            rolled_back = await changes.wait(bad)
        finally:
            changes.close()
    assert rolled_back.outcome == Outcome.ROLLED_BACK
    assert "search-0 error_rate" in (rolled_back.halt_reason or "")
    assert fleet.writes()["search/search-0"] == 2
    assert all(c["version"] == "1.4.2" for c in fleet.configs("search").values())


# --- analysis templates against the real Prometheus ------------------------------------------

TEMPLATES = """
analysis_templates:
  kinds:
    fleet:
      error-ratio:
        query: max by (instance) (fleet_error_ratio{service="{{selector.service}}",instance=~"{{units}}"})
        failure: "> 0.05"
        success: "<= 0.01"
      error-ratio-each:
        query: max(fleet_error_ratio{service="{{selector.service}}",instance="{{unit}}"})
        failure: "> 0.05"
"""  # noqa: E501


@pytest.fixture
async def template_source(prometheus: str) -> AsyncIterator[PrometheusSource]:
    source = PrometheusSource(prometheus, templates=parse_policy(TEMPLATES).analysis_templates)
    yield source
    await source.aclose()


@pytest.mark.e2e
async def test_templates_run_against_the_real_prometheus(
    template_source: PrometheusSource, fleet: Fleet
) -> None:
    source = template_source
    selector = {"service": "payments"}
    units = ["payments-0", "payments-1"]
    grouped = [HealthCheck(metric="error_rate", max=1, template="error-ratio")]
    each = [HealthCheck(metric="error_rate", max=1, template="error-ratio-each")]

    async def judged(checks: list[HealthCheck], phase: str) -> Measurement | None:
        values = await source.measure(selector, units, checks)
        measurement = classify(values, source.conditions(selector, checks))
        return measurement if measurement.phase == phase else None

    healthy = await wait_until(
        lambda: judged(grouped, "successful"), within=15, interval=0.25, what="payments healthy"
    )
    assert [v.unit_id for v in healthy.values] == units
    assert await judged(each, "successful") is not None

    fleet.set("payments", "payments-1", f"template-e2e-{uuid.uuid4().hex}", version="latest")

    failed = await wait_until(
        lambda: judged(grouped, "failed"), within=15, interval=0.25, what="payments-1 failing"
    )
    assert failed.reason.startswith("payments-1 error_rate=")
    assert failed.reason.endswith("> 0.05")
    per_unit = await judged(each, "failed")
    assert per_unit is not None and "payments-0" not in per_unit.reason


@pytest.mark.e2e
async def test_hostile_selector_values_are_one_label_value_to_the_real_prometheus(
    template_source: PrometheusSource,
) -> None:
    # If escaping let any of these out of its string, Prometheus would answer a parse error
    # (HealthSourceError) or match series it should not; it must find nothing, without error.
    for value in ['pay"}) or vector(1) #', "C:\\new", "a\\\\b", "x\ny", "pay.*"]:
        for template in ("error-ratio", "error-ratio-each"):
            check = HealthCheck(metric="error_rate", max=1, template=template)
            values = await template_source.measure({"service": value}, [value], [check])
            assert [v.value for v in values] == [None], (value, template)
