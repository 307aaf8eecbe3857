"""CLI commands for the HTTP API: `api` serves it, `token` issues and revokes its tokens."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from typing import cast

import click

from changegate.api import running_api
from changegate.cli.context import EXIT_INVALID, EXIT_NOT_FOUND, Context, fail, pass_context, run
from changegate.cli.output import emit_json, table
from changegate.client import credentials_path, load_credentials, save_credentials
from changegate.errors import ConfigurationError
from changegate.redaction import install_log_redaction
from changegate.service import ChangeService, connect
from changegate.settings import Settings
from changegate.store import (
    Role,
    Store,
    create_token,
    list_tokens,
    open_store,
    revoke_token,
    verify_token,
)

__all__ = ["api", "ensure_local_login", "is_loopback", "token"]


def _store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.store_url())


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ensure_local_login(store: Store, settings: Settings, *, api_url: str) -> bool:
    """Log the local CLI in as an admin of this store, unless its stored token still works.

    The token goes to the user's credentials file (mode 0600), never to the terminal or a
    log; `changegate login --print-token` shows it on request. True when a token was issued.
    """
    stored = load_credentials(settings.model_copy(update={"api_url": api_url}))
    with store.session() as session:
        if stored.token and verify_token(session=session, token=stored.token) is not None:
            if stored.api_url.rstrip("/") != api_url.rstrip("/"):
                save_credentials(settings, api_url=api_url, token=stored.token)
            return False
        issued = create_token(session=session, name="local-admin", role="admin")
    save_credentials(settings, api_url=api_url, token=issued)
    return True


def login_hint(settings: Settings, base_url: str, *, issued: bool) -> str:
    """What `up` and `api` say about logging in: where the token is, never the token."""
    where = credentials_path(settings)
    made = "issued a local-admin token and stored it" if issued else "your login is"
    return (
        f"{made} in {where} (mode 0600): the CLI uses it as it is; for the approval page "
        f"at {base_url}/ui/login, `changegate login --print-token` shows it"
    )


@click.group(name="token")
def token() -> None:
    """API tokens: agents submit with them, approvers decide, admins do everything."""


@token.command(name="create")
@click.option("--name", required=True, help="Who holds it; an approver's name as in the policy.")
@click.option(
    "--role",
    type=click.Choice(["agent", "approver", "admin"]),
    required=True,
    help="agent: submit and read its own changes; approver: decide and control; admin: all.",
)
@click.option("--agent-id", help="The agent an agent token acts as (required for --role agent).")
@click.option("--roles", default="", help="Extra roles, comma separated, e.g. sre,dev.")
@pass_context
def create(ctx: Context, name: str, role: str, agent_id: str | None, roles: str) -> None:
    """Issue a token and print it once: only its hash is kept."""
    if not 1 <= len(name.strip()) <= 200:
        fail("--name must be 1 to 200 characters", EXIT_INVALID)
    extra = [r.strip() for r in roles.split(",") if r.strip()]
    with _store(ctx.settings) as store, store.session() as session:
        try:
            issued = create_token(
                session=session,
                name=name.strip(),
                role=cast(Role, role),
                agent_id=agent_id,
                roles=cast(list[Role], extra),
            )
        except ValueError as exc:
            fail(str(exc), EXIT_INVALID)
            return
    ctx.emit(
        {"name": name, "role": role, "agent_id": agent_id, "roles": extra, "token": issued},
        f"{issued}\n(token for {name}, role {role}; shown once, store it now)",
    )


@token.command(name="list")
@pass_context
def list_command(ctx: Context) -> None:
    """Every token issued: id, holder, role, state; never the token itself."""
    with _store(ctx.settings) as store, store.session() as session:
        rows = list_tokens(session=session)
    data = [
        {
            "token_id": r.token_id,
            "name": r.name,
            "role": r.role,
            "agent_id": r.agent_id,
            "roles": r.roles,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "revoked": r.revoked,
        }
        for r in rows
    ]
    if ctx.as_json:
        emit_json(data)
        return
    table(
        ["id", "name", "role", "agent", "roles", "created", "state"],
        [
            [
                r.token_id,
                r.name,
                r.role,
                r.agent_id or "",
                ",".join(r.roles),
                r.created_at.isoformat(timespec="seconds"),
                "revoked" if r.revoked else "active",
            ]
            for r in rows
        ],
    )


@token.command(name="revoke")
@click.argument("token_id")
@pass_context
def revoke(ctx: Context, token_id: str) -> None:
    """Revoke a token for good (its web sessions end on their next request)."""
    with _store(ctx.settings) as store, store.session() as session:
        found = revoke_token(session=session, token_id=token_id)
    if not found:
        fail(f"no token {token_id!r}; `changegate token list` shows them", EXIT_NOT_FOUND)
    ctx.emit({"token_id": token_id, "revoked": True}, f"revoked {token_id}")


@click.command(name="api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8720, show_default=True, help="Port to listen on.")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --host; put TLS in front, tokens travel in headers.",
)
@pass_context
@run
async def api(ctx: Context, host: str, port: int, allow_remote: bool) -> None:
    """Serve the HTTP API and the approval page against the configured Temporal."""
    if not is_loopback(host) and not allow_remote:
        fail(
            f"--host {host} is not a loopback address; the API would be reachable from other "
            "machines without TLS. Pass --allow-remote to do it anyway.",
            EXIT_INVALID,
        )
    install_log_redaction()
    changes = ChangeService(await connect(ctx.settings), ctx.settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_api(
            settings=ctx.settings, changes=changes, host=host, port=port
        ) as base:
            issued = await asyncio.to_thread(
                ensure_local_login, changes.gate.store, ctx.settings, api_url=base
            )
            click.echo(f"changegate API on {base}/api/v1 (OpenAPI: {base}/openapi.json)")
            click.echo(f"approval page: {base}/ui/")
            click.echo(login_hint(ctx.settings, base, issued=issued))
            await stop.wait()
    except ConfigurationError as exc:
        fail(str(exc), EXIT_INVALID)
    finally:
        changes.close()
