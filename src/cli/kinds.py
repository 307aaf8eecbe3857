"""`changegate kinds`: the installed target kinds, as the registry loads them."""

from __future__ import annotations

import dataclasses

import click

from changegate.cli.context import Context, pass_context
from changegate.cli.output import emit_json
from changegate.kinds import KindRegistry, describe_kinds


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@pass_context
def kinds(ctx: Context, as_json: bool) -> None:
    """List the target kinds: selector keys, operations with their parameters, metrics."""
    infos = KindRegistry().info()
    if as_json or ctx.as_json:
        emit_json([dataclasses.asdict(info) for info in infos])
    else:
        click.echo(describe_kinds(infos))
