"""Authority: the signing key, admission tickets and decision proofs.

The front door (the HTTP API) signs; workers verify. Anything that reaches a workflow
without a valid signature can make a change safer, never let it proceed.
"""

from changegate.authority.keys import load_signing_key
from changegate.authority.principal import Capability, Principal
from changegate.authority.signing import (
    DECISION_TTL,
    Signer,
    policy_digest,
    request_digest,
)

__all__ = [
    "DECISION_TTL",
    "Capability",
    "Principal",
    "Signer",
    "load_signing_key",
    "policy_digest",
    "request_digest",
]
