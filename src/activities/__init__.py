"""Every side effect of a stage, as Temporal activities; dependencies injected by the worker."""

from changegate.activities.assess import AssessActivities
from changegate.activities.audit import AuditActivities
from changegate.activities.authority import AuthorityActivities
from changegate.activities.decisions import DecisionActivities
from changegate.activities.health import HealthActivities
from changegate.activities.notify import NotifyActivities
from changegate.activities.recon import ReconActivities
from changegate.activities.rollout import RolloutActivities
from changegate.activities.summary import render_summary
from changegate.activities.validation import ValidationActivities, blast_radius, context_sources

__all__ = [
    "AssessActivities",
    "AuditActivities",
    "AuthorityActivities",
    "DecisionActivities",
    "HealthActivities",
    "NotifyActivities",
    "ReconActivities",
    "RolloutActivities",
    "ValidationActivities",
    "blast_radius",
    "context_sources",
    "render_summary",
]
