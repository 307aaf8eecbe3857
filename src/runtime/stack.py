"""Start what `changegate up` and `changegate demo` need, and stop it all cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
from temporalio.client import Client

from changegate.errors import ConfigurationError
from changegate.observability import worker_runtime
from changegate.runtime.devserver import DevServer, port_open, start_dev_server
from changegate.service import TemporalUnreachable, connect, ensure_search_attributes
from changegate.settings import Settings
from changegate.worker import running_worker


@dataclass
class Stack:
    """The running parts and where each one is."""

    settings: Settings
    client: Client
    parts: dict[str, str] = field(default_factory=dict)


async def start_fleet(
    settings: Settings,
    *,
    log_path: Path,
    services: str | None = None,
    window: float | None = None,
) -> subprocess.Popen[bytes]:
    """Run the demo fleet as its own process at `settings.fleet_url`; wait until it answers.

    `services` (`name=count,...`) and `window` (seconds of health history) default to the
    fleet's own defaults.
    """
    url = urlparse(settings.fleet_url)
    host, port = url.hostname or "127.0.0.1", url.port or 8710
    if port_open(host, port):
        raise ConfigurationError(
            f"something already listens on {host}:{port}; stop it or set CHANGEGATE_FLEET_URL"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "changegate.fleet", "--host", host, "--port", str(port)),
                *(("--services", services) if services else ()),
                *(("--window", str(window)) if window else ()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    async with httpx.AsyncClient(timeout=1.0) as http:
        for _ in range(150):
            if process.poll() is not None:
                raise ConfigurationError(f"the fleet exited early; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{settings.fleet_url}/healthz")).status_code == 200:
                    return process
            await asyncio.sleep(0.1)
    process.terminate()
    raise ConfigurationError(f"the fleet did not answer at {settings.fleet_url} within 15s")


async def _connect_when_ready(settings: Settings, *, patient: bool) -> Client:
    """Connect; a dev server that just opened its port may need a few seconds more."""
    deadline = asyncio.get_running_loop().time() + (60 if patient else 0)
    while True:
        try:
            return await connect(settings, runtime=worker_runtime(settings))
        except TemporalUnreachable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    embedded_temporal: bool,
    with_fleet: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[Stack]:
    """Temporal (embedded or given), optionally the fleet, and a worker, until the block ends."""
    server: DevServer | None = None
    fleet: subprocess.Popen[bytes] | None = None
    try:
        parts: dict[str, str] = {}
        if embedded_temporal:
            host, _, port = settings.temporal_address.rpartition(":")
            ui_port = urlparse(settings.ui_url).port or 8233
            progress(f"starting the Temporal dev server ({settings.data_dir / 'temporal.db'})")
            server = await start_dev_server(
                data_dir=settings.data_dir, host=host, port=int(port), ui_port=ui_port
            )
            parts["temporal web UI"] = server.ui_url
        parts["temporal"] = settings.temporal_address
        client = await _connect_when_ready(settings, patient=embedded_temporal)
        added = await ensure_search_attributes(client, settings.namespace)
        if added:
            progress(f"registered search attributes {', '.join(added)}")
        if with_fleet:
            progress("starting the demo fleet")
            fleet = await start_fleet(settings, log_path=settings.data_dir / "fleet.log")
            parts["demo fleet"] = settings.fleet_url
        async with running_worker(client, settings):
            parts["worker"] = f"task queue {settings.task_queue!r}"
            yield Stack(settings=settings, client=client, parts=parts)
    finally:
        if fleet is not None and fleet.poll() is None:
            fleet.terminate()
            fleet.wait(timeout=10)
        if server is not None:
            server.stop()
