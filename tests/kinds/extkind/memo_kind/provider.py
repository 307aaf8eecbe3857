"""The memo provider: real file I/O on one JSON document, written atomically.

Document: `{"boards": {board: {note_id: {"text": ..., "priority": ...}}},
"receipts": {idempotency_key: note_id}, "writes": n}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from changegate.errors import InvalidTarget, TargetNotFound, UnsupportedOperation
from changegate.models import (
    ChangePlan,
    ChangeRequest,
    HealthCheck,
    MetricValue,
    Target,
    TargetObservation,
    UnitChange,
    UnitObservation,
)
from changegate.providers import phase_name, split_phases
from changegate.providers.selectors import check_keys, dns_label, label_list, selector_field
from changegate.settings import Settings

ENV = "CHANGEGATE_MEMO_FILE"
_LOCK = threading.Lock()


def memo_file(settings: Settings) -> Path:
    """`$CHANGEGATE_MEMO_FILE`, else `memo.json` in changegate's data directory."""
    return Path(os.environ.get(ENV) or settings.data_dir / "memo.json")


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"boards": {}, "receipts": {}, "writes": 0}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


class MemoProvider:
    """Reads and writes notes in the file at `path`."""

    kind = "memo"

    def __init__(self, path: Path) -> None:
        """Use `path`; nothing is read before the first call."""
        self.path = path

    def resolve(self, target: Target) -> Target:
        """The canonical memo target."""
        if target.kind != self.kind:
            raise InvalidTarget(
                rule="target.kind",
                field="target.kind",
                reason=f"target.kind {target.kind!a} is not 'memo'",
                would_pass="target.kind 'memo'",
            )
        check_keys(
            target.selector,
            kind=self.kind,
            required=("board",),
            optional=("instances",),
            example="{'board': 'ops'}",
        )
        board = dns_label(
            target.selector["board"], field=selector_field("board"), noun="board", example="ops"
        )
        selector = {"board": board}
        if "instances" in target.selector:
            selector["instances"] = label_list(
                target.selector["instances"],
                field=selector_field("instances"),
                noun="note id",
                example="n-0,n-1",
            )
        return Target(kind=self.kind, selector=selector)

    async def observe(self, target: Target) -> TargetObservation:
        """Every selected note and its fields."""
        target = self.resolve(target)
        notes = self._board(await asyncio.to_thread(_load, self.path), target)
        wanted = target.selector.get("instances")
        ids = sorted(notes) if wanted is None else wanted.split(",")
        missing = [i for i in ids if i not in notes]
        if missing:
            raise TargetNotFound(f"board has no note(s) {', '.join(missing)}")
        return TargetObservation(
            target_label=target.label(),
            observed_at=datetime.now(UTC),
            units=[UnitObservation(unit_id=i, state=dict(notes[i]), healthy=True) for i in ids],
        )

    async def plan(self, request: ChangeRequest, observation: TargetObservation) -> ChangePlan:
        """Per-note before/after of the keys set_note touches."""
        if request.change.operation != "set_note":
            raise UnsupportedOperation(f"memo has no operation {request.change.operation!r}")
        params = request.change.parameters
        by_id = {u.unit_id: u for u in observation.units}
        phases = split_phases([u.unit_id for u in observation.units], request.rollout)
        return ChangePlan(
            phases=[
                [
                    UnitChange(
                        unit_id=unit_id,
                        phase=phase_name(index),
                        before={k: by_id[unit_id].state.get(k) for k in params},
                        after=dict(params),
                    )
                    for unit_id in ids
                ]
                for index, ids in enumerate(phases)
            ]
        )

    async def read_unit(self, target: Target, unit_id: str) -> dict[str, JsonValue]:
        """One note's fields."""
        target = self.resolve(target)
        notes = self._board(await asyncio.to_thread(_load, self.path), target)
        if unit_id not in notes:
            raise TargetNotFound(f"no note {unit_id!r} on {target.label()}")
        state: dict[str, JsonValue] = notes[unit_id]
        return state

    async def apply(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.after`, once per key."""
        await asyncio.to_thread(self._write, target, unit.unit_id, unit.after, idempotency_key)

    async def revert(self, target: Target, unit: UnitChange, *, idempotency_key: str) -> None:
        """Write `unit.before` back, once per key; a key that was absent is removed."""
        await asyncio.to_thread(self._write, target, unit.unit_id, unit.before, idempotency_key)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _write(self, target: Target, unit_id: str, values: dict[str, JsonValue], key: str) -> None:
        target = self.resolve(target)
        with _LOCK:
            data = _load(self.path)
            if key in data["receipts"]:
                return
            notes = self._board(data, target)
            if unit_id not in notes:
                raise TargetNotFound(f"no note {unit_id!r} on {target.label()}")
            for name, value in values.items():
                if value is None:
                    notes[unit_id].pop(name, None)
                else:
                    notes[unit_id][name] = value
            data["receipts"][key] = unit_id
            data["writes"] += 1
            _save(self.path, data)

    @staticmethod
    def _board(data: dict[str, Any], target: Target) -> dict[str, dict[str, Any]]:
        board = target.selector["board"]
        if board not in data["boards"]:
            raise TargetNotFound(f"no board {board!r} in the memo file")
        notes: dict[str, dict[str, Any]] = data["boards"][board]
        return notes


class MemoHealth:
    """Each note's `error_rate` field, read from the file."""

    kind = "memo"

    def __init__(self, path: Path) -> None:
        """Read `path`."""
        self.path = path

    async def measure(
        self, selector: dict[str, str], unit_ids: Sequence[str], checks: Sequence[HealthCheck]
    ) -> list[MetricValue]:
        """One value per (note, check)."""
        data = await asyncio.to_thread(_load, self.path)
        notes = data["boards"].get(selector.get("board"), {})
        return [
            MetricValue(
                unit_id=unit_id,
                metric=check.metric,
                value=float(notes[unit_id].get(check.metric, 0.0)) if unit_id in notes else None,
                max=check.max,
            )
            for unit_id in unit_ids
            for check in checks
        ]

    async def aclose(self) -> None:
        """Nothing to release."""
