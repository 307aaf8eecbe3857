"""Every side effect of a stage, as Temporal activities; dependencies injected by the worker."""

from changegate.activities.health import HealthActivities
from changegate.activities.recon import ReconActivities
from changegate.activities.rollout import RolloutActivities
from changegate.activities.summary import render, render_summary
from changegate.activities.validation import DEFAULT_CHECKS, Check, ValidationActivities

__all__ = [
    "DEFAULT_CHECKS",
    "Check",
    "HealthActivities",
    "ReconActivities",
    "RolloutActivities",
    "ValidationActivities",
    "render",
    "render_summary",
]
