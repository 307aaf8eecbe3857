"""The audit store: changes, their history, incidents, refusals, kill switches and tokens.

SQLite by default (a file path), PostgreSQL by URL; the schema is migrated by Alembic with
revisions shipped in the package. Repository functions take a `session=` keyword and never
commit: `Store.session()` is the transaction, and `locked_session()` one that holds a
database lock for read-then-write invariants such as admission.
"""

from changegate.store.breakers import (
    BREAKER_ACTOR,
    applied_units,
    changes_of,
    last_release,
    list_trips,
    open_breaker,
    refusals_of,
    release_breakers,
)
from changegate.store.changes import (
    active_changes,
    advance_change,
    changes_count,
    get_change,
    recent_changes,
    upsert_change,
)
from changegate.store.engine import create_engine_for, database_url
from changegate.store.fingerprint import fingerprint
from changegate.store.history import (
    DecisionVerdict,
    list_decisions,
    list_events,
    list_findings,
    record_decision,
    record_events,
    record_findings,
)
from changegate.store.incidents import (
    IncidentRecord,
    close_incident,
    get_incident,
    list_incidents,
    open_incident,
    open_incident_targets,
)
from changegate.store.kill_switches import (
    GLOBAL_SCOPE,
    KillMode,
    active_kill_switch_for,
    agent_scope,
    get_kill_switches,
    set_kill_switch,
)
from changegate.store.locks import ADMISSION_LOCK, locked_session
from changegate.store.migrate import current_revision, head_revision, migrate
from changegate.store.refusals import list_refusals, record_refusal
from changegate.store.store import Store, open_store
from changegate.store.tables import (
    BreakerTripRow,
    ChangeRow,
    DecisionRow,
    EventRow,
    FindingRow,
    IncidentRow,
    KillSwitch,
    RefusalRow,
    TokenRow,
    metadata,
)
from changegate.store.tokens import Role, create_token, list_tokens, revoke_token, verify_token

__all__ = [
    "ADMISSION_LOCK",
    "BREAKER_ACTOR",
    "GLOBAL_SCOPE",
    "BreakerTripRow",
    "ChangeRow",
    "DecisionRow",
    "DecisionVerdict",
    "EventRow",
    "FindingRow",
    "IncidentRecord",
    "IncidentRow",
    "KillMode",
    "KillSwitch",
    "RefusalRow",
    "Role",
    "Store",
    "TokenRow",
    "active_changes",
    "active_kill_switch_for",
    "advance_change",
    "agent_scope",
    "applied_units",
    "changes_count",
    "changes_of",
    "close_incident",
    "create_engine_for",
    "create_token",
    "current_revision",
    "database_url",
    "fingerprint",
    "get_change",
    "get_incident",
    "get_kill_switches",
    "head_revision",
    "last_release",
    "list_decisions",
    "list_events",
    "list_findings",
    "list_incidents",
    "list_refusals",
    "list_tokens",
    "list_trips",
    "locked_session",
    "metadata",
    "migrate",
    "open_breaker",
    "open_incident",
    "open_incident_targets",
    "open_store",
    "recent_changes",
    "record_decision",
    "record_events",
    "record_findings",
    "record_refusal",
    "refusals_of",
    "release_breakers",
    "revoke_token",
    "set_kill_switch",
    "upsert_change",
    "verify_token",
]
