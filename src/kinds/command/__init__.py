"""The `command` target kind: observe, plan, apply and revert through executables.

The escape hatch for Terraform, Ansible and cloud CLIs. The operator configures each target
in `CHANGEGATE_COMMAND_TARGETS` (JSON `{name: {"argv": [...], "timeout_seconds": 60,
"env_allowlist": [...], "cwd": null, "keys": null}}`); a selector names one (`{"command":
"tfvars"}`, optionally `"instances": "a,b"`). A request never chooses what runs. When every
target lists the `keys` `set_values` may set, a key none of them lists is refused, by name,
before the workflow starts (and a key its own target does not list, when planning).

The contract (`changegate.command/v1`). Each call starts `argv` once, without a shell, with
only the allowlisted environment variables, writes one JSON object to its stdin and reads one
JSON object from its stdout. Every request holds `contract`, `call` and `target` (the name):

    call      request adds                                  answer (exit 0)
    observe   units: [id, ...] or null (all)                {"units": [{"id", "state": {...},
                                                              "healthy": bool|null}],
                                                              "facts": {...}}
    plan      operation, parameters, units: [{"id", "state"}]
                                                            {"units": [{"id", "before": {...},
                                                              "after": {...}}],
                                                              "reversible": bool}
    read      unit                                          {"state": {...}}
    apply     unit, before, after, idempotency_key          {} or {"state": {...}}
    revert    unit, before, after, idempotency_key          {} or {"state": {...}}
    health    units: [id, ...], metrics: [name, ...]        {"values": [{"unit", "metric",
                                                              "value": number|null}]}

`apply` brings the unit to `after`, `revert` back to `before`. Both run at least once: the
executable must treat a repeated `idempotency_key` as done (answer again, change nothing).
Unit ids are DNS labels. `plan` lists units in rollout order (the first is the canary); it
may refuse parameters with exit 2.

Exit codes: 0 the answer is on stdout; 2 the request is refused (bad operation or
parameters); 3 no such target or unit; 75 temporarily unavailable (retried); any other code
or a signal is a failure that is not retried. On a non-zero exit, stdout may hold
`{"error": "..."}`; otherwise the last line of stderr is the message (redacted, shortened).
A call that outlives `timeout_seconds` is killed with its process group (retried).
"""

from __future__ import annotations

from changegate.kinds.command.health import CommandHealthSource
from changegate.kinds.command.kind import KIND, CommandKind
from changegate.kinds.command.provider import CommandProvider
from changegate.kinds.command.schema import (
    CONTRACT,
    CommandKindSettings,
    CommandSelector,
    CommandTarget,
)

__all__ = [
    "CONTRACT",
    "KIND",
    "CommandHealthSource",
    "CommandKind",
    "CommandKindSettings",
    "CommandProvider",
    "CommandSelector",
    "CommandTarget",
]
