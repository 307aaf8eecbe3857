"""The stage machine: orchestration only, deterministic, every side effect an activity."""

from changegate.workflows.change import ChangeWorkflow
from changegate.workflows.options import SEARCH_ATTRIBUTES

__all__ = ["SEARCH_ATTRIBUTES", "ChangeWorkflow"]
