"""The blocking Python client, from a plain thread, through the API with real tokens."""

from __future__ import annotations

import asyncio
import time

import pytest

from changegate.client import Credentials, Refused, SyncChangeClient
from changegate.models import Outcome, Stage
from changegate.service import ChangeService
from tests.support import Fleet, make_request

pytestmark = pytest.mark.e2e


def run_blocking(api_url: str, agent: str, approver: str) -> tuple[Outcome | None, str, str]:
    """A script that knows nothing of asyncio: submit, wait for approval, approve, wait."""
    with (
        SyncChangeClient(Credentials(api_url=api_url, token=agent)) as client,
        SyncChangeClient(Credentials(api_url=api_url, token=approver)) as person,
    ):
        change_id = client.submit(make_request(service="search", assumptions={}))
        while client.status(change_id).stage != Stage.AWAITING_APPROVAL:
            time.sleep(0.2)
        with pytest.raises(Refused) as own:
            client.approve(change_id, reason="an agent approving its own change")
        answer = person.approve(change_id, reason="sync")
        assert answer["counted"] and answer["actor"] == "alice"
        final = client.wait(change_id, timeout=120)
        with pytest.raises(Refused) as refused:
            client.submit(make_request(service="ledger"))  # frozen by the test policy
        return final.outcome, refused.value.rule, own.value.rule


async def test_sync_client_runs_a_change_end_to_end(
    changes: ChangeService, api_url: str, cli_tokens: dict[str, str], fleet: Fleet
) -> None:
    outcome, rule, own = await asyncio.to_thread(
        run_blocking, api_url, cli_tokens["agent-7"], cli_tokens["alice"]
    )
    assert outcome == Outcome.DONE
    assert rule == "freeze_window"
    assert own == "auth.role"
    assert all(c["pool_size"] == 24 for c in fleet.configs("search").values())
