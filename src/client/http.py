"""The Python client: every call goes through the changegate API with the caller's token.

Identity comes from the token alone; guardrails run at the front door, never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx

from changegate.client.credentials import Credentials, load_credentials
from changegate.client.errors import Unauthenticated, Unavailable, error_for
from changegate.http_pool import KEEPALIVE_SECONDS, STALE_CONNECTION
from changegate.models import (
    ChangeRef,
    ChangeRequest,
    ChangeStatus,
    DecisionVerdict,
    KillSwitchScope,
)
from changegate.settings import Settings

Control = Literal["pause", "resume", "abort"]


class ChangeClient:
    """Submit, follow, decide on and control changes through the API; async."""

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        settings: Settings | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Talk to `credentials.api_url` (default: the environment or the stored login)."""
        self.credentials = credentials or load_credentials(settings or Settings())
        headers = {"User-Agent": "changegate-client"}
        if self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        # Idle connections are let go before the API's server (uvicorn, 5 s) closes them.
        self._http = httpx.AsyncClient(
            base_url=self.credentials.api_url.rstrip("/") + "/api/v1",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> ChangeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; the decoded JSON answer, or the `ApiError` subclass it means."""
        if not self.credentials.token:
            raise Unauthenticated(
                401,
                rule="auth.no_token",
                reason=f"no token for {self.credentials.api_url}",
                would_pass="`changegate login` (or CHANGEGATE_TOKEN); `changegate up` logs "
                "you in as the local admin",
            )
        try:
            response = await self._request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                503,
                rule="api.unreachable",
                reason=f"the changegate API at {self.credentials.api_url} did not answer "
                f"({type(exc).__name__})",
                would_pass="start it with `changegate up` (or `changegate api`), or point "
                "CHANGEGATE_API_URL at it",
            ) from exc
        if response.status_code >= 400:
            try:
                body: object = response.json()
            except ValueError:
                body = response.text
            after = response.headers.get("Retry-After")
            raise error_for(response.status_code, body, retry_after=float(after) if after else None)
        return response.json() if response.content else None

    # ---- changes -------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send once; a read (GET) the server dropped on a reused connection is sent again
        on a fresh one. A write is never resent: it may have landed."""
        try:
            return await self._http.request(method, path, **kwargs)
        except STALE_CONNECTION:
            if method != "GET":
                raise
            return await self._http.request(method, path, **kwargs)

    async def whoami(self) -> dict[str, Any]:
        """The caller as the API knows it: name, role, agent id, capabilities."""
        found: dict[str, Any] = await self.call("GET", "/whoami")
        return found

    async def submit(self, request: ChangeRequest) -> str:
        """Submit a change; its id, or `Refused` naming the rule that says no."""
        body = await self.call("POST", "/changes", json=request.model_dump(mode="json"))
        change_id: str = body["change_id"]
        return change_id

    async def status(self, change_id: str) -> ChangeStatus:
        """The change's full status."""
        return ChangeStatus.model_validate(await self.call("GET", f"/changes/{change_id}"))

    async def list_changes(
        self,
        *,
        agent: str | None = None,
        target: str | None = None,
        stage: str | None = None,
        outcome: str | None = None,
        pending: bool = False,
        limit: int = 50,
    ) -> list[ChangeRef]:
        """Changes, newest first (an agent token sees its own)."""
        params: dict[str, Any] = {"limit": limit, "pending": pending}
        filters = (("agent", agent), ("target", target), ("stage", stage), ("outcome", outcome))
        params.update({k: v for k, v in filters if v})
        found: list[dict[str, Any]] = await self.call("GET", "/changes", params=params)
        return [ChangeRef.model_validate(ref) for ref in found]

    async def decide(
        self, change_id: str, verdict: DecisionVerdict, *, reason: str = ""
    ) -> dict[str, Any]:
        """Approve or reject as the token's holder; `Refused` when policy does not count it."""
        body: dict[str, Any] = await self.call(
            "POST", f"/changes/{change_id}/{verdict}", json={"reason": reason}
        )
        return body

    async def approve(self, change_id: str, *, reason: str = "") -> dict[str, Any]:
        """Approve as the token's holder."""
        return await self.decide(change_id, "approve", reason=reason)

    async def reject(self, change_id: str, *, reason: str) -> dict[str, Any]:
        """Reject as the token's holder."""
        return await self.decide(change_id, "reject", reason=reason)

    async def control(self, change_id: str, verb: Control, *, reason: str = "") -> None:
        """Pause, resume or abort as the token's holder."""
        await self.call("POST", f"/changes/{change_id}/{verb}", json={"reason": reason})

    async def wait(
        self,
        change_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (one deadline for the whole wait)
        interval: float = 0.5,
    ) -> ChangeStatus:
        """Poll until the change ends; `TimeoutError` after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            async for status in self.watch(change_id, interval=interval):
                if status.ended:
                    return status
        raise AssertionError("watch ends only with an ended change")

    async def watch(self, change_id: str, *, interval: float = 0.5) -> AsyncIterator[ChangeStatus]:
        """Yield the status each time its timeline grows, until the change ends."""
        seen = -1
        while True:
            status = await self.status(change_id)
            if len(status.timeline) != seen or status.ended:
                seen = len(status.timeline)
                yield status
            if status.ended:
                return
            await asyncio.sleep(interval)

    # ---- operators -----------------------------------------------------------------------

    async def kill_switch(
        self,
        scope: KillSwitchScope,
        action: Literal["engage", "release"],
        *,
        mode: str,
        reason: str,
    ) -> dict[str, Any]:
        """Engage or release a kill switch; what it reached."""
        body: dict[str, Any] = await self.call(
            "POST",
            "/killswitches",
            json={"scope": scope, "action": action, "mode": mode, "reason": reason},
        )
        return body

    async def kill_switches(self) -> list[dict[str, Any]]:
        """Every kill switch ever set."""
        found: list[dict[str, Any]] = await self.call("GET", "/killswitches")
        return found

    async def incidents(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Incidents, newest first."""
        found: list[dict[str, Any]] = await self.call(
            "GET", "/incidents", params={"open_only": open_only}
        )
        return found

    async def incident(self, incident_id: str) -> dict[str, Any]:
        """One incident with its review."""
        found: dict[str, Any] = await self.call("GET", f"/incidents/{incident_id}")
        return found

    async def reconcile(self, *, dry_run: bool = False) -> dict[str, Any]:
        """Release the targets of changes whose workflows closed unrecorded (admin); the report."""
        report: dict[str, Any] = await self.call("POST", "/reconcile", params={"dry_run": dry_run})
        return report

    async def close_incident(self, incident_id: str) -> dict[str, Any]:
        """Close an incident, lifting its freeze."""
        found: dict[str, Any] = await self.call("POST", f"/incidents/{incident_id}/close")
        return found
