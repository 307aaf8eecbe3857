"""`login`, `logout` and `whoami`: the CLI's credential, stored the way kubectl and gh do."""

from __future__ import annotations

import sys

import click

from changegate.cli.context import EXIT_NOT_FOUND, Context, fail, pass_context, run
from changegate.client import (
    ChangeClient,
    Credentials,
    credentials_path,
    forget_credentials,
    load_credentials,
    save_credentials,
)


@click.command()
@click.option("--api-url", help="The changegate API (default: CHANGEGATE_API_URL or stored).")
@click.option(
    "--token-stdin", is_flag=True, help="Read the token from stdin instead of a hidden prompt."
)
@click.option(
    "--print-token",
    is_flag=True,
    help="Print the stored token on its own line (to paste into the approval page) and exit.",
)
@pass_context
@run
async def login(ctx: Context, api_url: str | None, token_stdin: bool, print_token: bool) -> None:
    """Store a token for the CLI, after the API confirms who it belongs to."""
    current = load_credentials(ctx.settings)
    if print_token:
        if not current.token:
            fail(f"no stored login for {current.api_url}; run `changegate login`", EXIT_NOT_FOUND)
        click.echo(current.token)
        click.echo("(a secret: do not paste it into chats, tickets or logs)", err=True)
        return
    url = (api_url or current.api_url).rstrip("/")
    if token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = click.prompt(f"token for {url}", hide_input=True).strip()
    async with ChangeClient(Credentials(api_url=url, token=token)) as api:
        who = await api.whoami()
    path = save_credentials(ctx.settings, api_url=url, token=token)
    ctx.emit(
        {"api_url": url, "credentials": str(path), **who},
        f"logged in to {url} as {who['name']} ({who['role']}); stored in {path}",
    )


@click.command()
@pass_context
def logout(ctx: Context) -> None:
    """Forget the stored token."""
    path = credentials_path(ctx.settings)
    removed = forget_credentials(ctx.settings)
    ctx.emit(
        {"credentials": str(path), "removed": removed},
        f"removed {path}" if removed else "no stored login",
    )


@click.command()
@pass_context
@run
async def whoami(ctx: Context) -> None:
    """Who the API says you are, by your token."""
    async with ctx.api() as api:
        who = await api.whoami()
    caps = ", ".join(who["capabilities"])
    agent = f", agent {who['agent_id']}" if who.get("agent_id") else ""
    ctx.emit(who, f"{who['name']} ({who['role']}{agent}) at {api.credentials.api_url}: {caps}")
