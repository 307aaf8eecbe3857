"""The `changegate` command line, for agents, approvers and operators."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from changegate.cli.api import api, token
from changegate.cli.changes import COMMANDS
from changegate.cli.context import Context
from changegate.cli.demo import demo
from changegate.cli.example import example
from changegate.cli.history import history, replay
from changegate.cli.kinds import kinds
from changegate.cli.login import login, logout, whoami
from changegate.cli.mcp import mcp
from changegate.cli.operations import breaker, incident, killswitch, reconcile
from changegate.cli.policy import policy
from changegate.cli.serve import fleet, up, worker
from changegate.settings import Settings

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--temporal-address", help="Temporal frontend host:port [CHANGEGATE_TEMPORAL_ADDRESS]."
)
@click.option("--namespace", help="Temporal namespace [CHANGEGATE_NAMESPACE].")
@click.option("--task-queue", help="Task queue of the workers [CHANGEGATE_TASK_QUEUE].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[CHANGEGATE_DATA_DIR].")
@click.option("--fleet-url", help="The demo fleet's URL [CHANGEGATE_FLEET_URL].")
@click.option("--api-url", help="The changegate API [CHANGEGATE_API_URL].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines (also -o json).")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), help="Output format.")
@click.pass_context
def cli(
    ctx: click.Context, /, as_json: bool, output: str | None, **overrides: str | Path | None
) -> None:
    """changegate: every agent-proposed infrastructure change as a durable, gated workflow.

    `--json` and `-o json` work before or after the subcommand; errors then come as JSON on
    stderr, `{"error": {"rule", "reason", "would_pass"}}`, the API's error body.
    """
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    ctx.obj = Context(settings, as_json=as_json or output == "json")


def _set_output(ctx: click.Context, param: click.Parameter, value: str | bool | None) -> None:
    """Turn JSON on for the invocation when a subcommand's --json or -o json says so."""
    obj = ctx.find_object(Context)
    if obj is not None and value in (True, "json"):
        obj.as_json = True
    elif obj is not None and value == "text":
        obj.as_json = False


def _accept_output_options(command: click.Command) -> None:
    """Give `command` (and a group's subcommands) `--json` and `-o/--output` of their own.

    A command that already uses one of those names for something else keeps it.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_output_options(sub)
    taken = {name for param in command.params for name in param.opts + param.secondary_opts}
    if "--json" not in taken:
        command.params.append(
            click.Option(
                ["--json"],
                is_flag=True,
                expose_value=False,
                callback=_set_output,
                help="Print JSON for machines (also -o json).",
            )
        )
    if not taken & {"-o", "--output"}:
        command.params.append(
            click.Option(
                ["-o", "--output"],
                type=click.Choice(["text", "json"]),
                expose_value=False,
                callback=_set_output,
                help="Output format.",
            )
        )


_OPERATOR = [
    up,
    demo,
    worker,
    fleet,
    api,
    token,
    mcp,
    killswitch,
    breaker,
    incident,
    reconcile,
    history,
    replay,
    kinds,
    example,
    policy,
]
_IDENTITY = [login, logout, whoami]
for _command in [*COMMANDS, *_IDENTITY, *_OPERATOR]:
    _accept_output_options(_command)
    cli.add_command(_command)


def main() -> None:
    """Entry point of the `changegate` console script."""
    try:
        cli()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    # Skip interpreter teardown: the Temporal client's native threads can abort a short-lived
    # process while Python finalizes (PyGILState_Release), turning success into a crash.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
