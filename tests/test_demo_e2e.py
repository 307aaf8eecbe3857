"""`changegate demo` run as a user runs it, on its own embedded Temporal and fleet."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port

pytestmark = pytest.mark.e2e


async def test_demo_plays_the_story_and_exits_0(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CHANGEGATE_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "CHANGEGATE_UI_URL": f"http://127.0.0.1:{free_port()}",
        "CHANGEGATE_FLEET_URL": f"http://127.0.0.1:{free_port()}",
        "CHANGEGATE_DATA_DIR": str(tmp_path / "data"),
        "NO_COLOR": "1",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "changegate", "demo"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
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
    assert (tmp_path / "data" / "demo" / "temporal.db").exists()
