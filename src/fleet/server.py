"""Running the fleet as its own process: uvicorn around `create_app`, and `--services` parsing."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn

from changegate.fleet.app import create_app
from changegate.fleet.spec import FleetSpec, ServiceSpec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8710


def parse_services(text: str) -> FleetSpec:
    """Return the spec for `name=count,...`, e.g. `checkout=4,search=3`; raise ValueError if bad."""
    services: dict[str, ServiceSpec] = {}
    for part in text.split(","):
        name, sep, count = part.strip().partition("=")
        name = name.strip()
        if not sep or not name or not count.strip().isdigit():
            raise ValueError(
                f"bad service entry {part.strip()!r}: expected name=count, e.g. checkout=4"
            )
        if name in services:
            raise ValueError(f"service {name!r} is listed twice")
        services[name] = ServiceSpec(instances=int(count))
    return FleetSpec(services=services)


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    spec: FleetSpec | None = None,
    tick_seconds: float = 0.1,
    window_seconds: float = 2.0,
) -> None:
    """Serve the fleet until SIGINT or SIGTERM, printing one line once it accepts connections."""
    spec = spec or FleetSpec()
    app = create_app(spec, tick_seconds=tick_seconds, window_seconds=window_seconds)
    server = _AnnouncingServer(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"),
        services=spec.describe(),
    )
    with _stop_quietly_on_signals():
        asyncio.run(server.serve())


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints where it listens once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, *, services: str) -> None:
        super().__init__(config)
        self._services = services

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then announce the address actually bound."""
        await super().startup(sockets=sockets)
        if self.started and self.servers:
            # Port 0 asks the OS for a free port, so report the bound one, not the requested one.
            port = self.servers[0].sockets[0].getsockname()[1]
            print(
                f"fleet listening on http://{self.config.host}:{port} (services: {self._services})",
                flush=True,
            )


@contextlib.contextmanager
def _stop_quietly_on_signals() -> Iterator[None]:
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal under the
    # previous handler, which would kill the process (or raise KeyboardInterrupt) after a clean
    # stop. A no-op previous handler makes that clean stop end with exit status 0.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(_signum: int, _frame: object) -> None:
    return None
