"""The http kind's contract harness: the session's real fleet process as a JSON config API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.kinds.contract import Harness, register
from tests.support import Fleet

from changegate.kinds.http import HttpEndpoint
from changegate.models import Target
from changegate.settings import Settings


def ledger_endpoint(url: str) -> HttpEndpoint:
    """Service `ledger` of the fleet, its instances listed through its service document."""
    return HttpEndpoint.model_validate(
        {
            "url": url,
            "list_path": "/services/ledger",
            "list_pointer": "/instances",
            "id_pointer": "/instance",
            "item_path": "/services/ledger/instances/{unit}",
            "pointer": "/config",
            "write_path": "/services/ledger/instances/{unit}/config",
            "write_pointer": "/config",
            "healthy_pointer": "/health/status",
            "health_pointers": {
                "error_rate": "/health/error_rate",
                "latency_p99_ms": "/health/latency_p99_ms",
            },
            "keys": ["version", "pool_size", "timeout_ms", "log_level"],  # the fleet's config
        }
    )


@register("http")
def http_harness(request: pytest.FixtureRequest) -> Harness:
    """Endpoint `ledger`: the two `ledger` instances of the real fleet, at their defaults."""
    url: str = request.getfixturevalue("fleet_process")
    tmp: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    Fleet(url).reset()
    # The kind builds its provider from its own settings, read from the environment.
    endpoints = {"ledger": ledger_endpoint(url).model_dump()}
    monkeypatch.setenv("CHANGEGATE_HTTP_ENDPOINTS", json.dumps(endpoints))
    return Harness(
        settings=Settings(data_dir=tmp),
        target=Target(kind="http", selector={"endpoint": "ledger"}),
        operation="set_values",
        parameters={"pool_size": 31, "log_level": "warn"},
        spellings=[
            (
                Target(
                    kind="http", selector={"endpoint": "ledger", "instances": "ledger-1,ledger-0"}
                ),
                Target(
                    kind="http", selector={"endpoint": "ledger", "instances": "ledger-0,ledger-1"}
                ),
            )
        ],
        bad_selectors=[
            ({"endpoint": "Ledger"}, "target.selector.endpoint"),
            ({"endpoint": "billing"}, "target.selector.endpoint"),
            ({"endpoint": "http://evil.example.com"}, "target.selector.endpoint"),
            ({"endpoint": "ledger", "url": "http://evil.example.com"}, "target.selector.url"),
            ({"endpoint": "ledger", "instances": "a,,b"}, "target.selector.instances"),
            ({"instances": "ledger-0"}, "target.selector.endpoint"),
        ],
        bad_parameters=[
            ({"pool_size": [31]}, "change.parameters.pool_size"),
            ({"log_level": {"level": "warn"}}, "change.parameters.log_level"),
            ({"replicas": 3}, "change.parameters.replicas"),
            ({"bad key": 1}, "change.parameters.bad key"),
            ({}, "change.parameters"),
        ],
        cleanup=[Fleet(url).reset],
    )
