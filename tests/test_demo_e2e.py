"""`changegate demo` run as a user runs it: on its own dev server at free ports, or on a
Temporal given by the environment."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from changegate.settings import Settings

pytestmark = pytest.mark.e2e

# What `changegate up` listens on by default: the demo must not need any of it free.
DEFAULTS = Settings.model_fields


def run_demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changegate", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def demo_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The user's environment without any changegate address: only what `values` give."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEGATE_")}
    return {**env, "CHANGEGATE_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1", **values}


def assert_story(out: str) -> None:
    # Act 1: the stale agent's change would lower checkout-2 (28 -> 24): it is stopped at
    # VALIDATE, before any approver is asked; the summary's first line says what would happen.
    assert "stale-written-key: the agent assumed units.*.pool_size = 20" in out
    assert "direction-reversed: the agent believes pool_size goes 20 → 24 (a raise)" in out
    assert "pool_size 20 → 24 on 3, 28 → 24 on checkout-2" in out
    assert "BLOCKED  (story needs BLOCKED)" in out
    # ... then it observes, leaves the hand-raised instance alone and resubmits; that runs.
    assert "ACT 1, again: the agent observes and resubmits with the true state" in out
    assert "checkout-2: pool_size 28" in out
    assert "(3 units): pool_size 20 → 24 on all 3" in out
    assert "DONE  (story needs DONE)" in out
    # Act 2: the canary's health fails and the change is rolled back.
    assert "canary health failed" in out
    assert "ROLLED_BACK  (story needs ROLLED_BACK)" in out
    assert out.count("/namespaces/default/workflows/chg-") == 3


async def test_demo_plays_the_story_on_its_own_dev_server_at_free_ports(tmp_path: Path) -> None:
    result = await asyncio.to_thread(run_demo, demo_env(tmp_path))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert_story(out)
    assert (tmp_path / "data" / "demo" / "temporal.db").exists()
    # No address was given, so it chose its own: none of the fixed defaults that another
    # Temporal, UI or fleet on this machine may hold.
    temporal = re.search(r"· temporal: 127\.0\.0\.1:(\d+)$", out, re.MULTILINE)
    ui = re.search(r"· temporal web UI: http://127\.0\.0\.1:(\d+)$", out, re.MULTILINE)
    fleet = re.search(r"· demo fleet: http://127\.0\.0\.1:(\d+)$", out, re.MULTILINE)
    assert temporal and ui and fleet, out
    chosen = {temporal[1], ui[1], fleet[1]}
    defaults = {
        DEFAULTS[name].default.rsplit(":", 1)[1]
        for name in ("temporal_address", "ui_url", "fleet_url")
    }
    assert len(chosen) == 3 and not chosen & defaults


async def test_demo_plays_the_story_on_a_temporal_given_by_the_environment(
    settings: Settings, tmp_path: Path
) -> None:
    env = demo_env(
        tmp_path,
        CHANGEGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        CHANGEGATE_TASK_QUEUE=f"demo-existing-{os.getpid()}",
    )
    result = await asyncio.to_thread(run_demo, env)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert_story(out)
    assert f"· temporal: {settings.temporal_address}" in out
    assert "starting the Temporal dev server" not in out
    assert not (tmp_path / "data" / "demo" / "temporal.db").exists()
