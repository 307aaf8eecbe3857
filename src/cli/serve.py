"""CLI commands that run things: up, worker, fleet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import click

from changegate.api import running_api
from changegate.cli.api import ensure_local_login, login_hint
from changegate.cli.context import Context, pass_context, run
from changegate.redaction import install_log_redaction
from changegate.runtime import running_stack
from changegate.runtime.devserver import embed_temporal
from changegate.service import ChangeService
from changegate.worker import run_worker


async def _until_interrupted() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _given_address(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    obj = ctx.find_object(Context)
    if value is not None and obj is not None:
        obj.settings = obj.settings.model_copy(update={"temporal_address": value})


temporal_address_option = click.option(
    "--temporal-address",
    expose_value=False,
    callback=_given_address,
    help="Use the Temporal at host:port, starting no dev server (also before the command, "
    "or CHANGEGATE_TEMPORAL_ADDRESS).",
)
"""`--temporal-address` after `up` or `demo` too, where a user looking for it will try it."""


@click.command()
@click.option(
    "--embedded/--no-embedded",
    default=None,
    help="Start the embedded Temporal dev server (default: only when no Temporal address is "
    "given by --temporal-address or CHANGEGATE_TEMPORAL_ADDRESS).",
)
@click.option("--api-port", default=8720, show_default=True, help="Port of the API and page.")
@temporal_address_option
@pass_context
@run
async def up(ctx: Context, embedded: bool | None, api_port: int) -> None:
    """Start everything to use changegate locally; Ctrl-C stops it all.

    Given a Temporal address, it uses that Temporal and starts no dev server; else it starts
    one at 127.0.0.1:7233 (web UI at CHANGEGATE_UI_URL) and says what to do if one is busy.
    """
    embedded = embed_temporal(ctx.settings, embedded)
    async with running_stack(ctx.settings, embedded_temporal=embedded, progress=_say) as stack:
        changes = ChangeService(stack.client, ctx.settings)
        try:
            async with running_api(settings=ctx.settings, changes=changes, port=api_port) as base:
                issued = await asyncio.to_thread(
                    ensure_local_login, changes.gate.store, ctx.settings, api_url=base
                )
                stack.parts["api"] = f"{base}/api/v1 (OpenAPI at {base}/openapi.json)"
                stack.parts["approval page"] = f"{base}/ui/"
                click.echo(click.style("changegate is up", fg="green", bold=True))
                for name, where in stack.parts.items():
                    click.echo(f"  {name:<16} {where}")
                click.echo("  " + login_hint(ctx.settings, base, issued=issued))
                click.echo("submit a change with `changegate submit FILE`; Ctrl-C stops everything")
                await _until_interrupted()
                click.echo("stopping")
        finally:
            changes.close()


def _say(message: str) -> None:
    click.echo(click.style("· ", fg="cyan") + message)


@click.command()
@pass_context
@run
async def worker(ctx: Context) -> None:
    """Run a worker against an existing Temporal (scale out by running more)."""
    install_log_redaction()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(ctx.settings, stop=stop)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8710, show_default=True)
@click.option(
    "--services",
    default="checkout=4,search=3,payments=3",
    show_default=True,
    help="name=instances, comma separated.",
)
def fleet(host: str, port: int, services: str) -> None:
    """Run the demo fleet: services with instances, config, health and /metrics."""
    from changegate.fleet import parse_services, serve

    with contextlib.suppress(KeyboardInterrupt):
        serve(host=host, port=port, spec=parse_services(services))
