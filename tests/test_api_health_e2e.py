"""`/healthz` and `/readyz` served for real: no token, and 503 naming what does not answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from changegate.api import running_api
from changegate.service import ChangeService
from changegate.settings import Settings
from tests.support import free_port

pytestmark = pytest.mark.e2e


async def test_health_and_readiness_need_no_token(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
        guarded = await http.get("/api/v1/changes")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "audit_store": {"status": "ok", "detail": ""},
            "temporal": {"status": "ok", "detail": ""},
        },
    }
    assert guarded.status_code == 401


async def test_not_ready_when_the_store_and_temporal_do_not_answer(
    settings: Settings, tmp_path: Path
) -> None:
    # A store under a plain file (no directory can be made there), and a Temporal on a port
    # nothing serves.
    (tmp_path / "a-file").write_text("")
    broken = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'a-file' / 'changegate.db'}"}
    )
    nobody = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    changes = ChangeService(nobody, broken)
    try:
        async with (
            running_api(settings=broken, changes=changes, port=0) as base,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
    finally:
        changes.close()
    assert health.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "audit_store": "unavailable",
        "temporal": "unavailable",
    }
    assert "the audit store did not answer" in body["checks"]["audit_store"]["detail"]
    assert "Temporal did not answer" in body["checks"]["temporal"]["detail"]
