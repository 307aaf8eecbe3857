"""CLI commands for agents and approvers: submit, list, show, watch, decide, control."""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from typing import IO, Any, TypeVar

import click
import yaml
from pydantic import ValidationError

from changegate.cli import check
from changegate.cli.context import (
    EXAMPLE_HINT,
    EXIT_INVALID,
    EXIT_OUTCOME,
    EXIT_UNREACHABLE,
    Context,
    fail,
    pass_context,
    run,
    validation_fields,
    validation_message,
)
from changegate.cli.live import POLL_SECONDS, follow, print_outcome
from changegate.cli.output import emit_json, show_status, table
from changegate.client import ChangeClient
from changegate.client.http import Control as ControlVerb
from changegate.models import ChangeRequest, ChangeStatus, Outcome, Stage

E = TypeVar("E", bound=StrEnum)


def load_request(stream: IO[str], *, source: str) -> ChangeRequest:
    """Parse YAML or JSON into a request, exiting with precise errors when it is invalid."""
    try:
        raw = yaml.safe_load(stream.read())
    except yaml.YAMLError as exc:
        fail(
            f"{source} is neither valid YAML nor JSON: {exc}",
            EXIT_INVALID,
            rule="request.malformed",
            would_pass=EXAMPLE_HINT,
        )
    if not isinstance(raw, dict):
        fail(
            f"{source} must hold one change request object, not {type(raw).__name__}",
            EXIT_INVALID,
            rule="request.malformed",
            would_pass=EXAMPLE_HINT,
        )
    try:
        return ChangeRequest.model_validate(raw)
    except ValidationError as exc:
        fields = validation_fields(exc)
        fail(
            validation_message(exc, source=source),
            EXIT_INVALID,
            rule="schema",
            reason=f"{len(fields)} problem(s) in {source}; first: "
            f"{fields[0]['path']}: {fields[0]['message']}",
            would_pass=EXAMPLE_HINT,
            fields=fields,
        )


def enum_filter(value: str | None, enum: type[E], *, flag: str) -> E | None:
    """`value` as a member of `enum`, or exit 2 naming the members; None stays None."""
    if value is None:
        return None
    try:
        return enum(value.upper())
    except ValueError:
        members = ", ".join(enum)
        fail(
            f"{flag} {value!r} is not one of: {members}",
            EXIT_INVALID,
            rule="schema",
            would_pass=f"{flag} with one of: {members}",
            fields=[{"path": flag, "message": f"not one of {members} (got {value!r})"}],
        )


@click.command()
@click.argument("file", type=click.File("r"))
@click.option("--wait", is_flag=True, help="Block until the change ends; exit 1 unless DONE.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="With --wait: give up after SECONDS (exit 4); the change itself goes on.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Start nothing: print the admission verdict, risk tier and VALIDATE's findings "
    "(exit 0 if it would start, 5 if refused, 1 if VALIDATE would block it).",
)
@pass_context
@run
async def submit(
    ctx: Context,
    file: IO[str],
    wait: bool,
    timeout: float | None,  # noqa: ASYNC109 (a click option)
    dry_run: bool,
) -> None:
    """Submit a change request from FILE (YAML or JSON; `-` reads stdin).

    `changegate example [KIND]` prints a complete, commented request to start from.
    """
    if timeout is not None and not wait:
        fail("--timeout applies only with --wait", EXIT_INVALID, would_pass="add --wait")
    source = "stdin" if file.name == "<stdin>" else file.name
    request = load_request(file, source=source)
    if dry_run:
        if wait:
            fail("--dry-run starts nothing to wait for", EXIT_INVALID, would_pass="drop --wait")
        return await check.dry_run(ctx, request)
    async with ctx.api() as changes:
        change_id = await changes.submit(request)
        if wait and not ctx.as_json:
            click.echo(f"submitted {change_id}; waiting for it to end")
        try:
            final = None
            if wait:
                async with asyncio.timeout(timeout):
                    final = await _follow(ctx, changes, change_id, quiet=ctx.as_json)
        except TimeoutError:
            fail(
                f"{change_id} had not ended after {timeout:g}s; it goes on: "
                f"`changegate watch {change_id}` follows it",
                EXIT_UNREACHABLE,
                rule="wait.timeout",
                would_pass=f"a longer --timeout, or `changegate watch {change_id}`",
                change_id=change_id,
            )
    if final is None:
        if ctx.as_json:
            emit_json({"change_id": change_id, "url": ctx.settings.workflow_url(change_id)})
        else:
            click.echo(f"submitted {change_id}\n{ctx.settings.workflow_url(change_id)}")
        return
    _print_final(ctx, final)


def _print_final(ctx: Context, status: ChangeStatus) -> None:
    if ctx.as_json:
        emit_json(status.model_dump(mode="json"))
    else:
        print_outcome(status)
    if status.outcome != Outcome.DONE:
        raise SystemExit(EXIT_OUTCOME)


@click.command(name="list")
@click.option("--pending", is_flag=True, help="Only changes awaiting approval.")
@click.option("--agent", help="Only this agent's changes.")
@click.option("--target", help="Only changes on this target label, e.g. fleet:service=checkout.")
@click.option(
    "--stage",
    metavar="STAGE",
    help="Only changes in this stage (ENDED for finished ones): " + ", ".join(Stage) + ".",
)
@click.option(
    "--outcome",
    metavar="OUTCOME",
    help="Only changes that ended so: " + ", ".join(Outcome) + ".",
)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@pass_context
@run
async def list_changes(
    ctx: Context,
    pending: bool,
    agent: str | None,
    target: str | None,
    stage: str | None,
    outcome: str | None,
    limit: int,
) -> None:
    """List changes, newest first (an agent token lists its own agent's)."""
    filters: dict[str, Any] = {
        "agent": agent,
        "target": target,
        "stage": enum_filter(stage, Stage, flag="--stage"),
        "outcome": enum_filter(outcome, Outcome, flag="--outcome"),
    }
    params = {k: str(v) for k, v in filters.items() if v is not None}
    async with ctx.api() as changes:
        refs = await changes.list_changes(**params, pending=pending, limit=limit)
    if ctx.as_json:
        emit_json([r.model_dump(mode="json") for r in refs])
        return
    table(
        ["change", "stage", "outcome", "agent", "target", "workflow"],
        [
            [
                r.change_id,
                r.stage or "",
                r.outcome or "",
                r.agent or "",
                r.target or "",
                r.workflow_status,
            ]
            for r in refs
        ],
    )


@click.command()
@click.argument("change_id")
@pass_context
@run
async def show(ctx: Context, change_id: str) -> None:
    """Show a change: summary, findings, per-unit states, timeline."""
    async with ctx.api() as changes:
        status = await changes.status(change_id)
    if ctx.as_json:
        emit_json(status.model_dump(mode="json"))
    else:
        show_status(status, ui_url=ctx.settings.workflow_url(change_id))


@click.command()
@click.argument("change_id")
@pass_context
@run
async def watch(ctx: Context, change_id: str) -> None:
    """Follow a change until it ends; exit 1 unless it ends DONE.

    On a terminal the view is redrawn live: stage, units, the bake or analysis countdown,
    the latest metrics against their thresholds and the approvals still missing. Piped, or
    with --json, each new timeline event is printed as one line (a JSON object with --json).
    """
    async with ctx.api() as changes:
        final = await _follow(ctx, changes, change_id, quiet=False)
    if not ctx.as_json:
        print_outcome(final)
    if final.outcome != Outcome.DONE:
        raise SystemExit(EXIT_OUTCOME)


async def _follow(
    ctx: Context, changes: ChangeClient, change_id: str, *, quiet: bool
) -> ChangeStatus:
    """Follow the change: live on a terminal, else event lines (none when `quiet`)."""
    if quiet:
        return await changes.wait(change_id, interval=POLL_SECONDS)
    live = not ctx.as_json and sys.stdout.isatty()
    return await follow(changes, change_id, live=live, as_json=ctx.as_json)


def _decision_command(name: str, *, reason_required: bool) -> click.Command:
    @click.command(name=name)
    @click.argument("change_id")
    @click.option(
        "--reason" if reason_required else "--comment",
        "reason",
        help="Why (recorded in the history).",
        **({"required": True} if reason_required else {"default": ""}),
    )
    @pass_context
    @run
    async def command(ctx: Context, change_id: str, reason: str) -> None:
        async with ctx.api() as changes:
            answer = await changes.decide(
                change_id, "approve" if name == "approve" else "reject", reason=reason
            )
        ctx.emit(answer, f"{name} by {answer['actor']} counted on {change_id}")

    command.help = (
        f"{name.capitalize()} a change awaiting approval, as the holder of your token (see "
        "`changegate login`); exit 5 if policy does not count it."
    )
    return command


def _control_command(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text + " Recorded as the holder of your token.")
    @click.argument("change_id")
    @click.option("--reason", default="", help="Why (recorded in the history).")
    @pass_context
    @run
    async def command(ctx: Context, change_id: str, reason: str) -> None:
        verb: ControlVerb = (
            "pause" if name == "pause" else "resume" if name == "resume" else "abort"
        )
        async with ctx.api() as changes:
            await changes.control(change_id, verb, reason=reason)
        _acknowledge(ctx, change_id, name)

    return command


def _acknowledge(ctx: Context, change_id: str, verb: str) -> None:
    if ctx.as_json:
        emit_json({"change_id": change_id, "sent": verb})
    else:
        click.echo(f"sent {verb} to {change_id}")


approve = _decision_command("approve", reason_required=False)
reject = _decision_command("reject", reason_required=True)
pause = _control_command("pause", "Hold a change at its next safe point.")
resume = _control_command("resume", "Continue a held change where it stopped.")
abort = _control_command("abort", "Abort a change; whatever was applied is rolled back.")

COMMANDS = [submit, list_changes, show, watch, approve, reject, pause, resume, abort]
