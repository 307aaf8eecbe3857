"""Export a change's history, and replay histories against the current workflow code."""

from __future__ import annotations

import json
from pathlib import Path

import click
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from changegate.cli.context import EXIT_OUTCOME, Context, pass_context, run
from changegate.cli.output import emit_json
from changegate.service import connect
from changegate.worker import workflow_runner
from changegate.workflows import ChangeWorkflow


@click.group()
def history() -> None:
    """Work with recorded workflow histories."""


@history.command(name="export")
@click.argument("change_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="File (default: stdout).")
@pass_context
@run
async def export(ctx: Context, change_id: str, output: Path | None) -> None:
    """Write the history of CHANGE_ID as JSON (the format the Temporal web UI downloads)."""
    client = await connect(ctx.settings)
    events = await client.get_workflow_handle(change_id).fetch_history()
    text = events.to_json()
    if output is None:
        click.echo(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {len(events.events)} events to {output}", err=True)


def replayer() -> Replayer:
    """A replayer with the current workflow code and the worker's sandbox settings."""
    return Replayer(
        workflows=[ChangeWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_context
@run
async def replay(ctx: Context, files: tuple[Path, ...]) -> None:
    """Replay history FILES against this code; exit 1 if any is non-deterministic."""
    results = []
    for path in files:
        data = json.loads(path.read_text())
        workflow_id = data.get("workflowId") or path.stem
        hist = WorkflowHistory.from_json(workflow_id, data)
        outcome = await replayer().replay_workflow(hist, raise_on_replay_failure=False)
        error = None if outcome.replay_failure is None else str(outcome.replay_failure)
        results.append({"file": str(path), "ok": error is None, "error": error})
    if ctx.as_json:
        emit_json(results)
    else:
        for r in results:
            mark = click.style("ok  ", fg="green") if r["ok"] else click.style("FAIL", fg="red")
            click.echo(f"{mark} {r['file']}" + (f"\n     {r['error']}" if r["error"] else ""))
    if not all(r["ok"] for r in results):
        raise SystemExit(EXIT_OUTCOME)
