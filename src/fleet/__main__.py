"""Command line entry point: `python -m changegate.fleet`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from changegate.fleet.server import DEFAULT_HOST, DEFAULT_PORT, parse_services, serve
from changegate.fleet.spec import FleetSpec


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve the fleet until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m changegate.fleet",
        description="Run the changegate demo fleet: simulated services over HTTP.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to bind, 0 for any (default: %(default)s)",
    )
    parser.add_argument(
        "--services",
        type=_services,
        default=FleetSpec(),
        metavar="NAME=COUNT,...",
        help="services and instance counts (default: checkout=4,search=3,payments=3)",
    )
    parser.add_argument(
        "--tick", type=float, default=0.1, help="seconds per simulation tick (default: %(default)s)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=2.0,
        help="seconds of samples that health is computed over (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.tick <= 0 or args.window < args.tick:
        parser.error("--tick must be positive and --window at least one tick")
    serve(
        host=args.host,
        port=args.port,
        spec=args.services,
        tick_seconds=args.tick,
        window_seconds=args.window,
    )


def _services(text: str) -> FleetSpec:
    try:
        return parse_services(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


if __name__ == "__main__":
    main()
