"""Tests of the demo fleet: the pure simulation, its HTTP API and the real process."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from changegate.errors import HealthSourceError
from changegate.fleet import (
    REQUESTS_PER_TICK,
    ConfigError,
    Fleet,
    FleetSpec,
    Health,
    InstanceConfig,
    Sample,
    ServiceSpec,
    UnknownTarget,
    WriteConflict,
    WriteResult,
    create_app,
    error_fraction,
    fleet_of,
    latency_p99_ms,
    merge_config,
    parse_services,
    render_metrics,
    sample_for,
    status_for,
)
from changegate.fleet.metrics import escape_label_value
from changegate.health import FleetMetricsSource
from changegate.health.prometheus_text import parse
from changegate.models import HealthCheck

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DEFAULT_CONFIG = {"version": "1.4.2", "pool_size": 20, "timeout_ms": 800, "log_level": "info"}
INSTANCE_KEYS = {"service", "instance", "config", "health", "writes"}
HEALTH_KEYS = {"status", "error_rate", "latency_p99_ms", "requests"}


def _config(**changes: object) -> InstanceConfig:
    return merge_config(InstanceConfig(), changes)


def _fleet(*, window_ticks: int = 4) -> Fleet:
    return Fleet(FleetSpec(), window_ticks=window_ticks)


def _write(fleet: Fleet, key: str, body: object, *, instance: str = "checkout-0") -> WriteResult:
    return fleet.write(
        service=instance.rsplit("-", 1)[0],
        instance_id=instance,
        idempotency_key=key,
        body=body,
        at=AT,
    )


# --- degradation rules -------------------------------------------------------------------------


def test_defaults_are_healthy_at_base_latency() -> None:
    assert InstanceConfig().view() == DEFAULT_CONFIG
    assert sample_for(InstanceConfig(), demand=16) == Sample(requests=5, errors=0, latency_ms=40.0)
    assert REQUESTS_PER_TICK == 5


@pytest.mark.parametrize("version", ["1.5.0-rc1", "latest", "v1.4.2", "1.4", "1.4.2 "])
def test_unreleased_version_fails_every_request(version: str) -> None:
    config = _config(version=version)
    assert error_fraction(config, demand=16) == 1.0
    assert sample_for(config, demand=16).errors == 5


@pytest.mark.parametrize(
    ("pool_size", "fraction", "latency", "errors"),
    [
        (16, 0.0, 40.0, 0),
        (15, 0.0625, 40 * (16 / 15) ** 2, 0),  # 0.3125 errors round down to 0
        (12, 0.25, 40 * (16 / 12) ** 2, 1),  # 1.25 -> 1
        (8, 0.5, 160.0, 3),  # 2.5 rounds half up to 3
        (4, 0.75, 640.0, 4),  # 3.75 -> 4
        (2, 0.875, 2560.0, 4),  # also times out; the larger fraction wins
    ],
)
def test_small_pool_drops_requests_and_slows_down(
    pool_size: int, fraction: float, latency: float, errors: int
) -> None:
    config = _config(pool_size=pool_size)
    assert error_fraction(config, demand=16) == pytest.approx(fraction)
    assert latency_p99_ms(config, demand=16) == pytest.approx(latency)
    assert sample_for(config, demand=16).errors == errors


def test_timeout_below_latency_fails_at_least_half() -> None:
    assert error_fraction(_config(timeout_ms=30), demand=16) == 0.5
    assert sample_for(_config(timeout_ms=30), demand=16).errors == 3
    # Pool 12 alone loses 0.25 at 71.1 ms; with a 50 ms timeout the timeouts dominate.
    assert error_fraction(_config(pool_size=12, timeout_ms=50), demand=16) == 0.5
    # Latency equal to the timeout is not a timeout.
    assert error_fraction(_config(timeout_ms=40), demand=16) == 0.0


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_log_level_has_no_effect(level: str) -> None:
    assert sample_for(_config(log_level=level), demand=16) == sample_for(
        InstanceConfig(), demand=16
    )


def test_demand_comes_from_the_service() -> None:
    fleet = Fleet(FleetSpec(services={"big": ServiceSpec(instances=1, demand=32)}))
    instance = fleet.instance("big", "big-0")
    assert instance.demand == 32
    sample = instance.tick()
    assert (sample.requests, sample.errors) == (5, 2)  # 5 * (1 - 20/32) = 1.875 -> 2
    assert sample.latency_ms == pytest.approx(40 * 1.6**2)


@pytest.mark.parametrize(
    ("rate", "status"),
    [
        (0.0, "healthy"),
        (0.049, "healthy"),
        (0.05, "degraded"),
        (0.49, "degraded"),
        (0.5, "failing"),
        (1.0, "failing"),
    ],
)
def test_status_thresholds(rate: float, status: str) -> None:
    assert status_for(rate) == status


# --- health windows ----------------------------------------------------------------------------


def test_empty_window_is_healthy_with_no_requests() -> None:
    health = _fleet().instance("search", "search-2").health()
    assert health == Health(status="healthy", error_rate=0.0, latency_p99_ms=0.0, requests=0)


def test_window_rolls_over_to_the_new_config() -> None:
    fleet = _fleet(window_ticks=4)
    instance = fleet.instance("checkout", "checkout-1")
    for _ in range(6):
        fleet.tick()
    assert instance.health().requests == 20  # capped at the window, not 30
    _write(fleet, "k", {"config": {"version": "latest"}}, instance="checkout-1")
    # The write shows from the next tick on, not retroactively.
    assert instance.health().error_rate == 0.0
    seen = []
    for _ in range(5):
        fleet.tick()
        health = instance.health()
        seen.append((health.error_rate, health.status, health.requests))
    assert seen == [
        (0.25, "degraded", 20),
        (0.5, "failing", 20),
        (0.75, "failing", 20),
        (1.0, "failing", 20),
        (1.0, "failing", 20),
    ]
    assert (instance.ok_total, instance.error_total) == (6 * 5, 5 * 5)
    # Other instances are untouched.
    assert fleet.instance("checkout", "checkout-0").health().error_rate == 0.0


def test_p99_is_nearest_rank_over_the_window() -> None:
    fleet = _fleet(window_ticks=4)
    instance = fleet.instance("search", "search-0")
    for _ in range(4):
        fleet.tick()
    _write(fleet, "k", {"config": {"pool_size": 12}}, instance="search-0")
    fleet.tick()
    # 15 requests at 40 ms and 5 at 71.1 ms: rank ceil(0.99 * 20) = 20 is a slow one.
    assert instance.health().latency_p99_ms == pytest.approx(40 * (16 / 12) ** 2)
    fast = [Sample(requests=1, errors=0, latency_ms=10.0)] * 99
    slow = [Sample(requests=1, errors=0, latency_ms=500.0)]
    assert Health.of(fast + slow).latency_p99_ms == 10.0
    assert Health.of(fast + slow * 2).latency_p99_ms == 500.0


# --- config writes -----------------------------------------------------------------------------


def test_write_merges_counts_and_logs() -> None:
    fleet = _fleet()
    result = _write(fleet, "k1", {"config": {"pool_size": 8}})
    _write(fleet, "k2", {"config": {"log_level": "debug"}})
    instance = fleet.instance("checkout", "checkout-0")
    assert instance.config == InstanceConfig(pool_size=8, log_level="debug")
    assert instance.writes == 2
    assert result.replayed is False
    assert result.response["idempotency_key"] == "k1"
    assert result.response["config"]["pool_size"] == 8
    assert [record.view() for record in fleet.log] == [
        {
            "seq": 1,
            "at": "2025-01-02T03:04:05+00:00",
            "service": "checkout",
            "instance": "checkout-0",
            "idempotency_key": "k1",
            "before": DEFAULT_CONFIG,
            "after": {**DEFAULT_CONFIG, "pool_size": 8},
        },
        {
            "seq": 2,
            "at": "2025-01-02T03:04:05+00:00",
            "service": "checkout",
            "instance": "checkout-0",
            "idempotency_key": "k2",
            "before": {**DEFAULT_CONFIG, "pool_size": 8},
            "after": {**DEFAULT_CONFIG, "pool_size": 8, "log_level": "debug"},
        },
    ]
    assert fleet.write_counts()["checkout/checkout-0"] == 2
    assert fleet.write_counts()["payments/payments-2"] == 0
    assert len(fleet.write_counts()) == 10


def test_replay_changes_and_counts_nothing() -> None:
    fleet = _fleet()
    first = fleet.write(
        service="checkout",
        instance_id="checkout-0",
        idempotency_key="k1",
        body={"config": {"pool_size": 8, "timeout_ms": 900}},
        at=AT,
    )
    _write(fleet, "k2", {"config": {"pool_size": 12}})
    fleet.tick()
    replay = fleet.write(
        service="checkout",
        instance_id="checkout-0",
        idempotency_key="k1",
        body={"config": {"timeout_ms": 900, "pool_size": 8}},  # key order is irrelevant
        at=AT,
    )
    assert replay.replayed is True
    assert replay.response == first.response  # the first answer, not the current state
    instance = fleet.instance("checkout", "checkout-0")
    assert instance.config.pool_size == 12  # the replay did not re-apply pool 8
    assert instance.writes == 2
    assert len(fleet.log) == 2


def test_reused_key_with_other_body_conflicts() -> None:
    fleet = _fleet()
    _write(fleet, "k1", {"config": {"pool_size": 8}})
    with pytest.raises(WriteConflict, match=r"'k1'.*different body"):
        _write(fleet, "k1", {"config": {"pool_size": 9}})
    with pytest.raises(WriteConflict):
        _write(fleet, "k1", {"config": {"pool_size": 8.0}})
    assert fleet.instance("checkout", "checkout-0").config.pool_size == 8
    assert len(fleet.log) == 1
    # Keys are scoped to one instance.
    assert not _write(fleet, "k1", {"config": {"pool_size": 9}}, instance="checkout-1").replayed


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({"config": {"pool": 8}}, ["'pool'", "pool_size"]),
        ({"config": {"pool_size": "8"}}, ["'pool_size'", "integer >= 1", '"8"']),
        ({"config": {"pool_size": True}}, ["'pool_size'", "integer", "boolean"]),
        ({"config": {"pool_size": 0}}, ["'pool_size'", ">= 1"]),
        ({"config": {"timeout_ms": 1.5}}, ["'timeout_ms'", "integer"]),
        ({"config": {"log_level": "verbose"}}, ["'log_level'", "debug, info, warn, error"]),
        ({"config": {"version": 142}}, ["'version'", "string", "1.4.2"]),
        ({"config": {"version": ""}}, ["'version'", "non-empty"]),
        ({"config": [1]}, ["JSON object", "array"]),
        ({"pool_size": 8}, ["'pool_size'", '{"config"']),
        ({}, ["missing", "'config'"]),
        ([], ["JSON object", '{"config"']),
    ],
)
def test_invalid_writes_explain_and_change_nothing(body: object, fragments: list[str]) -> None:
    fleet = _fleet()
    with pytest.raises(ConfigError) as caught:
        _write(fleet, "k1", body)
    for fragment in fragments:
        assert fragment in str(caught.value)
    instance = fleet.instance("checkout", "checkout-0")
    assert (instance.config, instance.writes, fleet.log) == (InstanceConfig(), 0, [])
    # A rejected write does not use up its key.
    assert not _write(fleet, "k1", {"config": {"pool_size": 10}}).replayed


def test_unknown_targets_name_what_exists() -> None:
    fleet = _fleet()
    with pytest.raises(UnknownTarget, match=r"'billing'.*checkout, search, payments"):
        fleet.instance("billing", "billing-0")
    with pytest.raises(UnknownTarget, match=r"'search-9'.*search-0, search-1, search-2"):
        fleet.instance("search", "search-9")


def test_reset_forgets_everything() -> None:
    fleet = _fleet()
    _write(fleet, "k1", {"config": {"version": "latest"}})
    fleet.tick()
    fleet.reset()
    instance = fleet.instance("checkout", "checkout-0")
    assert instance.config == InstanceConfig()
    assert (instance.writes, instance.ok_total, instance.error_total) == (0, 0, 0)
    assert instance.health().requests == 0
    assert fleet.log == []
    assert not _write(fleet, "k1", {"config": {"pool_size": 8}}).replayed


# --- spec and --services -----------------------------------------------------------------------


def test_default_spec() -> None:
    spec = FleetSpec()
    assert {name: s.instances for name, s in spec.services.items()} == {
        "checkout": 4,
        "search": 3,
        "payments": 3,
    }
    assert all(s.demand == 16 for s in spec.services.values())
    assert spec.instance_ids("checkout") == ["checkout-0", "checkout-1", "checkout-2", "checkout-3"]


def test_parse_services() -> None:
    spec = parse_services("checkout=4, search=3")
    assert spec.services == {"checkout": ServiceSpec(instances=4), "search": ServiceSpec(3)}
    assert spec.describe() == "checkout=4,search=3"


@pytest.mark.parametrize(
    "text", ["checkout", "checkout=x", "=3", "checkout=0", "Checkout=1", "a=1,a=2", ""]
)
def test_parse_services_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_services(text)


# --- metrics -----------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_render_every_family() -> None:
    fleet = Fleet(FleetSpec(services={"api": ServiceSpec(instances=2)}), window_ticks=2)
    fleet.write(
        service="api",
        instance_id="api-1",
        idempotency_key="k",
        body={"config": {"pool_size": 8}},
        at=AT,
    )
    fleet.tick()
    text = render_metrics(fleet)
    assert text.endswith("\n")
    for name, kind in [
        ("fleet_requests_total", "counter"),
        ("fleet_error_ratio", "gauge"),
        ("fleet_latency_p99_seconds", "gauge"),
        ("fleet_config_writes_total", "counter"),
        ("fleet_instance_info", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
        assert re.search(rf"^# HELP {name} \S", text, re.MULTILINE)
    assert _samples(text) == {
        'fleet_requests_total{service="api",instance="api-0",outcome="ok"}': 5,
        'fleet_requests_total{service="api",instance="api-0",outcome="error"}': 0,
        'fleet_requests_total{service="api",instance="api-1",outcome="ok"}': 2,
        'fleet_requests_total{service="api",instance="api-1",outcome="error"}': 3,
        'fleet_error_ratio{service="api",instance="api-0"}': 0.0,
        'fleet_error_ratio{service="api",instance="api-1"}': 0.6,
        'fleet_latency_p99_seconds{service="api",instance="api-0"}': 0.04,
        'fleet_latency_p99_seconds{service="api",instance="api-1"}': 0.16,
        'fleet_config_writes_total{service="api",instance="api-0"}': 0,
        'fleet_config_writes_total{service="api",instance="api-1"}': 1,
        'fleet_instance_info{service="api",instance="api-0",version="1.4.2"}': 1,
        'fleet_instance_info{service="api",instance="api-1",version="1.4.2"}': 1,
    }


def test_metrics_escape_label_values() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    fleet = Fleet(FleetSpec(services={"api": ServiceSpec(instances=1)}))
    fleet.write(
        service="api",
        instance_id="api-0",
        idempotency_key="k",
        body={"config": {"version": 'x"\n'}},
        at=AT,
    )
    assert 'version="x\\"\\n"} 1\n' in render_metrics(fleet)


def test_the_parser_decodes_escaped_label_values() -> None:
    """Regression: the hand-written parser turned the `\\n` of `C:\\new` into a newline."""
    text = (
        "# TYPE fleet_instance_info gauge\n"
        'fleet_instance_info{instance="api-0",version="C:\\\\new"} 1\n'
        'fleet_instance_info{instance="api-1",version="\\"quoted\\""} 1\n'
        'fleet_instance_info{instance="api-2",version="a\\\\\\\\b"} 1\n'
        'fleet_instance_info{instance="api-3",version="two\\nlines"} 1\n'
    )
    assert [labels["version"] for _, labels, _ in parse(text)] == [
        "C:\\new",
        '"quoted"',
        "a\\\\b",
        "two\nlines",
    ]


@pytest.mark.parametrize("version", ["C:\\new", '"quoted"', "a\\\\b", 'x"\n}'])
def test_metrics_round_trip_through_the_parser(version: str) -> None:
    fleet = Fleet(FleetSpec(services={"api": ServiceSpec(instances=1)}))
    fleet.write(
        service="api",
        instance_id="api-0",
        idempotency_key="k",
        body={"config": {"version": version}},
        at=AT,
    )
    (info,) = [labels for name, labels, _ in parse(render_metrics(fleet)) if "info" in name]
    assert info == {"service": "api", "instance": "api-0", "version": version}


def test_malformed_metrics_text_is_a_health_source_error() -> None:
    with pytest.raises(HealthSourceError, match="not valid Prometheus text"):
        parse('fleet_error_ratio{instance="unterminated} 1\n', source="http://127.0.0.1:9/metrics")


def test_metrics_filter_by_service_and_instance() -> None:
    fleet = Fleet(
        FleetSpec(services={"api": ServiceSpec(instances=3), "web": ServiceSpec(instances=1)})
    )
    every = {labels["instance"] for _, labels, _ in parse(render_metrics(fleet))}
    assert {"api-0", "api-1", "api-2", "web-0"} <= every
    api = {labels["instance"] for _, labels, _ in parse(render_metrics(fleet, service="api"))}
    assert api == {"api-0", "api-1", "api-2"}
    two = render_metrics(fleet, service="api", instances=["api-0", "api-2", "web-0"])
    assert {labels["instance"] for _, labels, _ in parse(two)} == {"api-0", "api-2"}
    assert parse(render_metrics(fleet, service="nope")) == []


# --- HTTP API ----------------------------------------------------------------------------------


@pytest.fixture
def app() -> FastAPI:
    return create_app(FleetSpec(), tick_seconds=0.1, window_seconds=0.4)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as client:
        yield client


CONFIG_URL = "/services/payments/instances/payments-1/config"


async def _put(
    client: httpx.AsyncClient, body: object, *, key: str | None = "k1", url: str = CONFIG_URL
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await client.put(url, content=json.dumps(body), headers=headers)


async def test_healthz_and_listing(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    services = (await client.get("/services")).json()["services"]
    assert [(s["name"], s["demand"], len(s["instances"])) for s in services] == [
        ("checkout", 16, 4),
        ("search", 16, 3),
        ("payments", 16, 3),
    ]
    view = services[0]["instances"][3]
    assert set(view) == INSTANCE_KEYS
    assert (view["service"], view["instance"], view["writes"]) == ("checkout", "checkout-3", 0)
    assert view["config"] == DEFAULT_CONFIG
    assert set(view["health"]) == HEALTH_KEYS
    search = (await client.get("/services/search")).json()
    assert search == services[1]


async def test_unknown_things_are_404_with_error(client: httpx.AsyncClient) -> None:
    for url in [
        "/services/billing",
        "/services/billing/instances/billing-0",
        "/services/search/instances/search-3",
        "/nowhere",
    ]:
        response = await client.get(url)
        assert response.status_code == 404, url
        assert set(response.json()) == {"error"}, url
    response = await _put(client, {"config": {}}, url="/services/search/instances/x/config")
    assert response.status_code == 404


async def test_write_replay_and_conflict(app: FastAPI, client: httpx.AsyncClient) -> None:
    first = await _put(client, {"config": {"version": "latest"}})
    assert first.status_code == 200
    assert "Idempotent-Replay" not in first.headers
    body = first.json()
    assert set(body) == INSTANCE_KEYS | {"idempotency_key"}
    assert body["idempotency_key"] == "k1"
    assert body["writes"] == 1
    assert body["config"] == {**DEFAULT_CONFIG, "version": "latest"}

    fleet_of(app).tick()
    replay = await _put(client, {"config": {"version": "latest"}})
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replay"] == "true"
    assert replay.json() == body

    conflict = await _put(client, {"config": {"version": "1.4.3"}})
    assert conflict.status_code == 409
    assert "k1" in conflict.json()["error"]

    writes = (await client.get("/writes")).json()
    assert [(w["seq"], w["idempotency_key"], w["after"]["version"]) for w in writes["writes"]] == [
        (1, "k1", "latest")
    ]
    record = writes["writes"][0]
    assert (record["service"], record["instance"], record["before"]) == (
        "payments",
        "payments-1",
        DEFAULT_CONFIG,
    )
    assert datetime.fromisoformat(record["at"]).utcoffset() is not None
    assert writes["counts"] == {
        f"{service}/{service}-{i}": int(service == "payments" and i == 1)
        for service, count in [("checkout", 4), ("search", 3), ("payments", 3)]
        for i in range(count)
    }


async def test_write_errors(client: httpx.AsyncClient) -> None:
    missing = await _put(client, {"config": {"pool_size": 8}}, key=None)
    assert missing.status_code == 400
    assert "Idempotency-Key" in missing.json()["error"]

    not_json = await client.put(CONFIG_URL, content=b"{nope", headers={"Idempotency-Key": "k"})
    assert not_json.status_code == 422
    assert "JSON" in not_json.json()["error"]

    wrong_type = await _put(client, {"config": {"timeout_ms": "fast"}})
    assert wrong_type.status_code == 422
    assert "'timeout_ms'" in wrong_type.json()["error"]

    view = (await client.get("/services/payments/instances/payments-1")).json()
    assert (view["config"], view["writes"]) == (DEFAULT_CONFIG, 0)


async def test_health_follows_ticks(app: FastAPI, client: httpx.AsyncClient) -> None:
    fleet = fleet_of(app)
    for _ in range(4):
        fleet.tick()
    assert (await _put(client, {"config": {"pool_size": 8}})).status_code == 200
    url = "/services/payments/instances/payments-1"
    assert (await client.get(url)).json()["health"]["status"] == "healthy"
    for _ in range(4):
        fleet.tick()
    assert (await client.get(url)).json()["health"] == {
        "status": "failing",
        "error_rate": 0.6,
        "latency_p99_ms": 160.0,
        "requests": 20,
    }
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = _samples(metrics.text)
    assert values['fleet_error_ratio{service="payments",instance="payments-1"}'] == 0.6
    assert values['fleet_error_ratio{service="payments",instance="payments-0"}'] == 0.0
    assert values['fleet_config_writes_total{service="payments",instance="payments-1"}'] == 1


async def test_metrics_endpoint_filters_by_query(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/metrics", params=[("service", "payments"), ("instance", "payments-1")]
    )
    assert response.status_code == 200
    series = {(name, labels["instance"]) for name, labels, _ in parse(response.text)}
    assert {instance for _, instance in series} == {"payments-1"}
    assert ("fleet_error_ratio", "payments-1") in series
    unfiltered = parse((await client.get("/metrics")).text)
    assert len({labels["instance"] for _, labels, _ in unfiltered}) > 1


async def test_reset_endpoint(app: FastAPI, client: httpx.AsyncClient) -> None:
    assert (await _put(client, {"config": {"version": "latest"}})).status_code == 200
    fleet_of(app).tick()
    assert (await client.post("/reset")).json() == {"status": "reset"}
    view = (await client.get("/services/payments/instances/payments-1")).json()
    assert (view["config"], view["writes"], view["health"]["requests"]) == (DEFAULT_CONFIG, 0, 0)
    writes = (await client.get("/writes")).json()
    assert writes["writes"] == []
    assert set(writes["counts"].values()) == {0}
    # The key is free again: this is a fresh write, not a replay.
    again = await _put(client, {"config": {"pool_size": 10}})
    assert "Idempotent-Replay" not in again.headers
    assert again.json()["writes"] == 1


async def _eventually(check: Callable[[], bool], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def test_lifespan_runs_the_ticker() -> None:
    app = create_app(FleetSpec(), tick_seconds=0.01, window_seconds=0.1)
    instance = fleet_of(app).instance("search", "search-0")
    async with app.router.lifespan_context(app):
        await _eventually(lambda: instance.health().requests == 10 * REQUESTS_PER_TICK)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "fleet-ticker"]


# --- the real process --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _poll(check: Callable[[], bool], *, process: subprocess.Popen[str], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, "the fleet process exited early"
        try:
            if check():
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.05)


@pytest.mark.e2e
def test_real_process_degrades_and_stops_cleanly() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "changegate.fleet",
            "--port",
            str(port),
            "--services",
            "checkout=2,payments=2",
            "--tick",
            "0.05",
            "--window",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as http:
            _poll(
                lambda: http.get("/healthz").json() == {"status": "ok"}, process=process, within=15
            )
            response = http.put(
                "/services/payments/instances/payments-1/config",
                json={"config": {"version": "1.5.0-rc1"}},
                headers={"Idempotency-Key": "e2e-bad-version"},
            )
            assert response.status_code == 200, response.text

            url = "/services/payments/instances/payments-1"
            _poll(
                lambda: http.get(url).json()["health"]["status"] == "failing",
                process=process,
                within=10,
            )
            ratio = 'fleet_error_ratio{service="payments",instance="payments-1"}'

            def full_window_failing() -> bool:
                return _samples(http.get("/metrics").text)[ratio] == 1.0

            _poll(full_window_failing, process=process, within=10)
            healthy = _samples(http.get("/metrics").text)
            assert healthy['fleet_error_ratio{service="payments",instance="payments-0"}'] == 0.0
            assert http.get("/writes").json()["counts"]["payments/payments-1"] == 1
        process.terminate()
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert stdout.splitlines()[0] == (
        f"fleet listening on http://127.0.0.1:{port} (services: checkout=2,payments=2)"
    )


# --- reading the fleet's metrics over a kept-alive connection ---------------------------------


async def test_metrics_read_retries_once_when_the_pooled_connection_was_closed() -> None:
    """A server that drops a kept-alive connection at its second request, as a restarted
    fleet or an idle-timeout proxy does: the read is retried once on a fresh connection."""
    body = (
        b'# TYPE fleet_error_ratio gauge\nfleet_error_ratio{service="api",instance="api-0"} 0.25\n'
    )
    connections = 0
    paths: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            paths.append(head.split(b" ")[1].decode())
            if served:
                writer.close()  # drop the reused connection without an answer
                return
            served += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = FleetMetricsSource(f"http://127.0.0.1:{port}")
    checks = [HealthCheck(metric="error_rate", max=0.05)]
    try:
        for _ in range(2):
            (value,) = await source.measure({"service": "api"}, ["api-0"], checks)
            assert value.value == 0.25
    finally:
        await source.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 2
    assert paths == ["/metrics?instance=api-0&service=api"] * 3
