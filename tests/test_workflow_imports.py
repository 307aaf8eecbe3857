"""The workflow's import closure holds only contracts, pure rules and the stage machine."""

from __future__ import annotations

import json
import subprocess
import sys

from changegate.worker import PASSTHROUGH

# I/O that must never be importable from workflow code, directly or transitively.
FORBIDDEN = (
    "httpx",
    "sqlalchemy",
    "sqlmodel",
    "psycopg",
    "alembic",
    "fastapi",
    "uvicorn",
    "mcp",
    "changegate.activities",
    "changegate.store",
    "changegate.providers",
    "changegate.service",
    "changegate.api",
    "changegate.client",
    "changegate.health.sources",
    "changegate.health.prometheus",
)


def closure() -> list[str]:
    script = "import json, sys; import changegate.workflows; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(out.stdout)
    return modules


def test_the_workflow_imports_no_io() -> None:
    loaded = closure()
    found = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert found == []


def test_every_changegate_module_in_the_closure_is_passed_through_or_a_workflow() -> None:
    ours = [m for m in closure() if m.startswith("changegate.")]
    allowed = (*PASSTHROUGH, "changegate.workflows")
    stray = [m for m in ours if not any(m == p or m.startswith(p + ".") for p in allowed)]
    assert stray == []
