"""The fleet's contract harness: the session's real fleet process, service `inventory`."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.kinds.contract import Harness, register
from tests.support import Fleet

from changegate.models import Target
from changegate.settings import Settings


@register("fleet")
def fleet_harness(request: pytest.FixtureRequest) -> Harness:
    """Two instances of `inventory` on the real fleet, at their defaults."""
    url: str = request.getfixturevalue("fleet_process")
    tmp: Path = request.getfixturevalue("tmp_path")
    Fleet(url).reset()
    return Harness(
        settings=Settings(fleet_url=url, data_dir=tmp),
        target=Target(kind="fleet", selector={"service": "inventory"}),
        operation="set_config",
        parameters={"pool_size": 31, "log_level": "warn"},
        spellings=[
            (
                Target(
                    kind="fleet",
                    selector={"service": "inventory", "instances": "inventory-1,inventory-0"},
                ),
                Target(
                    kind="fleet",
                    selector={"service": "inventory", "instances": "inventory-0,inventory-1"},
                ),
            )
        ],
        bad_selectors=[
            ({"service": "Inventory"}, "target.selector.service"),
            ({"service": "inventory", "region": "eu"}, "target.selector.region"),
            ({"service": "inventory", "instances": "a,,b"}, "target.selector.instances"),
        ],
        bad_parameters=[
            ({"pool_size": "lots"}, "change.parameters.pool_size"),
            ({"pool_size": -5}, "change.parameters.pool_size"),
            ({"pool_size": 8.0}, "change.parameters.pool_size"),
            ({"pool_size": True}, "change.parameters.pool_size"),
            ({"log_level": "loud"}, "change.parameters.log_level"),
            ({"version": ""}, "change.parameters.version"),
            ({"pool_size": None}, "change.parameters.pool_size"),
            ({}, "change.parameters"),
        ],
        cleanup=[Fleet(url).reset],
    )
