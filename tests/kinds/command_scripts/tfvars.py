#!/usr/bin/env python3
"""A command-kind executable over Terraform variable files: one unit per `<unit>.tfvars.json`.

It speaks changegate's command contract (`changegate.kinds.command`): one JSON request on
stdin, one JSON answer on stdout. `TFVARS_DIR` is the directory of variable files; a real
wrapper would run `terraform apply -var-file=...` after writing one. Keys already applied are
journaled in `.changegate-keys.json`, so a repeated idempotency key changes nothing.
Test hooks: `TFVARS_SLEEP` seconds before answering, `TFVARS_FAIL=call:code` to exit with
`code` on `call`. Health: `instance_type` "t3.nano" is too small and fails 90% of requests.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

ALLOWED = {"instance_type": str, "replicas": int, "region": str}
SUFFIX = ".tfvars.json"


def main() -> int:
    request = json.load(sys.stdin)
    if request.get("contract") != "changegate.command/v1":
        return refuse(2, f"unknown contract {request.get('contract')!r}")
    call = request["call"]
    time.sleep(float(os.environ.get("TFVARS_SLEEP", "0")))
    failing, _, code = os.environ.get("TFVARS_FAIL", "").partition(":")
    if failing == call:
        print(f"{call} failed on purpose", file=sys.stderr)
        return int(code)
    root = Path(os.environ["TFVARS_DIR"])
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return CALLS[call](root, request)


def units(root: Path) -> dict[str, dict[str, object]]:
    return {p.name[: -len(SUFFIX)]: json.loads(p.read_text()) for p in root.glob("*" + SUFFIX)}


def observe(root: Path, request: dict) -> int:
    found = units(root)
    wanted = request["units"]
    listed = [
        {"id": uid, "state": state, "healthy": state.get("instance_type") != "t3.nano"}
        for uid, state in sorted(found.items())
        if wanted is None or uid in wanted
    ]
    return answer({"units": listed, "facts": {"workspace_count": len(found)}})


def plan(root: Path, request: dict) -> int:
    if request["operation"] != "set_values":
        return refuse(2, f"no operation {request['operation']!r}")
    values = request["parameters"]
    for key, value in values.items():
        if key not in ALLOWED:
            return refuse(2, f"{key!r} is not a variable; variables: {', '.join(ALLOWED)}")
        if type(value) is not ALLOWED[key]:
            return refuse(2, f"{key!r} must be a {ALLOWED[key].__name__}")
    planned = [
        {"id": u["id"], "before": {k: u["state"].get(k) for k in values}, "after": values}
        for u in request["units"]
    ]
    return answer({"units": planned, "reversible": True})


def read(root: Path, request: dict) -> int:
    path = root / (request["unit"] + SUFFIX)
    if not path.exists():
        return refuse(3, f"no workspace {request['unit']!r}")
    return answer({"state": json.loads(path.read_text())})


def write(root: Path, request: dict) -> int:
    journal_path = root / ".changegate-keys.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else []
    path = root / (request["unit"] + SUFFIX)
    if not path.exists():
        return refuse(3, f"no workspace {request['unit']!r}")
    state = json.loads(path.read_text())
    if request["idempotency_key"] not in journal:
        goal = request["after"] if request["call"] == "apply" else request["before"]
        state.update(goal)
        path.write_text(json.dumps(state, sort_keys=True))
        journal.append(request["idempotency_key"])
        journal_path.write_text(json.dumps(journal))
    return answer({"state": state})


def health(root: Path, request: dict) -> int:
    found = units(root)
    values = []
    for uid in request["units"]:
        nano = found.get(uid, {}).get("instance_type") == "t3.nano"
        measured = {"error_rate": 0.9 if nano else 0.01, "latency_p99_ms": 900.0 if nano else 40.0}
        for metric in request["metrics"]:
            values.append({"unit": uid, "metric": metric, "value": measured.get(metric)})
    return answer({"values": values})


def answer(body: dict) -> int:
    json.dump(body, sys.stdout)
    return 0


def refuse(code: int, message: str) -> int:
    json.dump({"error": message}, sys.stdout)
    return code


CALLS = {
    "observe": observe,
    "plan": plan,
    "read": read,
    "apply": write,
    "revert": write,
    "health": health,
}

if __name__ == "__main__":
    sys.exit(main())
