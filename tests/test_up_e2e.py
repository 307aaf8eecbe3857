"""`changegate up`: starts everything, stops cleanly on Ctrl-C, resumes in-flight changes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from changegate.models import Decision, Outcome, Stage
from changegate.service import ChangeService, connect
from changegate.settings import Settings
from tests.support import Fleet, free_port, make_request, wait_for_stage, wait_until

pytestmark = pytest.mark.e2e


def start_up(env: dict[str, str], log: Path, api_port: int) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "changegate", "up", "--embedded", "--api-port", str(api_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


async def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    return await asyncio.to_thread(proc.wait, 60)


async def test_up_runs_changes_and_resumes_them_after_a_restart(
    fleet: Fleet, tmp_path: Path
) -> None:
    port, ui_port = free_port(), free_port()
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}",
        ui_url=f"http://127.0.0.1:{ui_port}",
        fleet_url=fleet.url,
        data_dir=tmp_path / "data",
    )
    config = tmp_path / "config"
    env = {
        **os.environ,
        "CHANGEGATE_CONFIG_DIR": str(config),
        "CHANGEGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "CHANGEGATE_UI_URL": settings.ui_url,
        "CHANGEGATE_FLEET_URL": settings.fleet_url,
        "CHANGEGATE_DATA_DIR": str(settings.data_dir),
        "NO_COLOR": "1",
    }
    log = tmp_path / "up.log"
    api_port = free_port()
    first = start_up(env, log, api_port)
    try:
        await wait_until(lambda: "changegate is up" in log.read_text(), within=60, what="up")
        text = log.read_text()
        assert f"temporal web UI  http://127.0.0.1:{ui_port}" in text
        assert "registered search attributes" not in text  # the dev server registers them
        assert f"approval page    http://127.0.0.1:{api_port}/ui/" in text
        # The CLI is logged in as the local admin; the token is in the user's credentials
        # file (mode 0600) and never on the terminal.
        stored = json.loads((config / "credentials.json").read_text())
        token = stored["token"]
        assert stored["api_url"] == f"http://127.0.0.1:{api_port}"
        assert (config / "credentials.json").stat().st_mode & 0o077 == 0
        assert token not in text
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            me = await http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["role"] == "admin"
            anonymous = await http.get("/api/v1/changes")
            assert anonymous.status_code == 401
        changes = ChangeService(await connect(settings), settings)
        change_id = await changes.submit(
            make_request(service="payments", assumptions={"unit_count": 3})
        )
        await wait_for_stage(changes, change_id, Stage.AWAITING_APPROVAL)
        assert await stop(first) == 0
        assert "stopping" in log.read_text()

        second = start_up(env, log, api_port)
        try:
            await wait_until(lambda: log.read_text().count("changegate is up") == 2, within=60)
            # The stored login still works, so no second token is issued.
            assert log.read_text().count("issued a local-admin token") == 1
            assert json.loads((config / "credentials.json").read_text())["token"] == token
            assert token not in log.read_text()
            changes = ChangeService(await connect(settings), settings)
            await changes.approve(change_id, Decision(actor="alice"))
            final = await changes.wait(change_id)
            assert final.outcome == Outcome.DONE
            assert all(c["pool_size"] == 24 for c in fleet.configs("payments").values())
        finally:
            assert await stop(second) == 0
    finally:
        if first.poll() is None:
            first.kill()


def up_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A user's environment for `changegate up` with its files under `tmp_path`."""
    return {
        **os.environ,
        "CHANGEGATE_CONFIG_DIR": str(tmp_path / "config"),
        "CHANGEGATE_DATA_DIR": str(tmp_path / "data"),
        "NO_COLOR": "1",
        **values,
    }


def run_up(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changegate", "up", "--api-port", str(free_port()), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_up_uses_a_temporal_given_by_the_environment_and_starts_no_dev_server(
    settings: Settings, tmp_path: Path
) -> None:
    queue = f"up-existing-{os.getpid()}"
    env = up_env(
        tmp_path,
        CHANGEGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        CHANGEGATE_TASK_QUEUE=queue,
        CHANGEGATE_FLEET_URL=settings.fleet_url,
    )
    log = tmp_path / "up.log"
    with log.open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "changegate", "up", "--api-port", str(free_port())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        await wait_until(lambda: "changegate is up" in log.read_text(), within=60, what="up")
        text = log.read_text()
        assert f"temporal         {settings.temporal_address}" in text
        assert "starting the Temporal dev server" not in text
        assert "temporal web UI" not in text
        assert not (tmp_path / "data" / "temporal.db").exists()
        # Its worker polls the given Temporal.
        changes = ChangeService(await connect(settings), settings)
        await wait_until(lambda: changes.has_worker(queue), within=30, what="up's worker")
        assert await stop(proc) == 0
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_an_unreachable_given_temporal_is_one_line_and_exit_4(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    by_env = await asyncio.to_thread(run_up, up_env(tmp_path, CHANGEGATE_TEMPORAL_ADDRESS=address))
    # The flag after the command means the same as the variable.
    by_flag = await asyncio.to_thread(run_up, up_env(tmp_path), "--temporal-address", address)
    for result in (by_env, by_flag):
        assert result.returncode == 4
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: cannot reach Temporal at {address} ")
    assert not (tmp_path / "data" / "temporal.db").exists()


async def test_a_busy_dev_server_port_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        address = f"127.0.0.1:{port}"
        result = await asyncio.to_thread(
            run_up, up_env(tmp_path, CHANGEGATE_TEMPORAL_ADDRESS=address), "--embedded"
        )
        assert result.returncode == 2
        [line] = result.stderr.splitlines()
        assert line.startswith(f"error: {address} is already in use")
        assert f"use it with --temporal-address {address}" in line

        ui = await asyncio.to_thread(
            run_up,
            up_env(
                tmp_path,
                CHANGEGATE_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
                CHANGEGATE_UI_URL=f"http://{address}",
            ),
            "--embedded",
        )
        assert ui.returncode == 2
        [line] = ui.stderr.splitlines()
        assert line.startswith(f"error: {address}, the Temporal web UI's port, is already in use")
        assert "CHANGEGATE_UI_URL=http://127.0.0.1:PORT" in line
