"""`changegate demo`: start what is needed and play the story changegate exists for."""

from __future__ import annotations

import asyncio
import shutil

import click

from changegate.api import running_api
from changegate.cli.context import EXIT_OUTCOME, Context, pass_context, run
from changegate.cli.output import state_label, timeline_line
from changegate.cli.serve import temporal_address_option
from changegate.models import ChangeStatus
from changegate.runtime import running_stack
from changegate.runtime.demo import demo_settings, demo_tokens, play, story_holds
from changegate.service import ChangeService

# Left out of the closing timelines, which are already printed live in full.
_QUIET = {"stage", "measurement", "summary", "held"}


def _progress(message: str) -> None:
    click.echo(click.style("· ", fg="cyan") + message)


def _say(message: str) -> None:
    click.echo("\n" + click.style(message.splitlines()[0], bold=True))
    for line in message.splitlines()[1:]:
        click.echo("  " + line)


def _event(change_id: str, status: ChangeStatus, printed: int) -> None:
    for event in status.timeline[printed:]:
        line = timeline_line(event)
        click.echo(click.style(change_id, fg="cyan") + line)


@click.command()
@click.option(
    "--embedded/--no-embedded",
    default=None,
    help="Start the embedded Temporal dev server on free ports (default: only when no "
    "Temporal address is given by --temporal-address or CHANGEGATE_TEMPORAL_ADDRESS).",
)
@temporal_address_option
@pass_context
@run
async def demo(ctx: Context, embedded: bool | None) -> None:
    """Play the demo: a stale-context change stopped, observed and resubmitted, then a bad
    release rolled back by its canary.

    It runs in its own data directory (`<data dir>/demo`), emptied at the start, so that the
    incident and history of an earlier run do not freeze this one.
    """
    demo_dir = ctx.settings.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    settings, embedded = demo_settings(
        ctx.settings.model_copy(update={"data_dir": demo_dir}), embedded=embedded
    )
    async with running_stack(
        settings, embedded_temporal=embedded, with_fleet=True, progress=_progress
    ) as stack:
        for name, where in stack.parts.items():
            _progress(f"{name}: {where}")
        changes = ChangeService(stack.client, settings)
        try:
            tokens = await asyncio.to_thread(lambda: demo_tokens(changes.gate.store))
            async with running_api(settings=settings, changes=changes, port=0) as base:
                _progress(f"api: {base}/api/v1 (agents and the approver each use a token)")
                results = await play(
                    base, tokens, fleet_url=settings.fleet_url, say=_say, on_event=_event
                )
        finally:
            changes.close()
        click.echo("\n" + click.style("HOW IT ENDED", bold=True))
        for played in results:
            status, want = played.status, played.expected.value
            click.echo(f"\n  {status.change_id}  {state_label(status)}  (story needs {want})")
            click.echo(f"    {played.title}; web UI: {settings.workflow_url(status.change_id)}")
            for event in status.timeline:
                if event.kind not in _QUIET:
                    click.echo("  " + timeline_line(event))
    if not story_holds(results):
        click.echo(click.style("the demo's story did not hold", fg="red"), err=True)
        raise SystemExit(EXIT_OUTCOME)
    click.echo(click.style("every outcome is what the story says", fg="green"))
    # `up` on the demo's data directory reopens its history: on the dev server's SQLite file
    # (at up's own ports) when the demo embedded one, else on the same given Temporal.
    ui = f" at {ctx.settings.ui_url}" if embedded else ""
    click.echo(
        f"explore it afterwards: `changegate --data-dir {demo_dir} up`, then "
        f"`changegate incident list` and the Temporal web UI{ui}"
    )
