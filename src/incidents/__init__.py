"""Incidents: classification by documented rules and the pre-filled post-incident review."""

from changegate.incidents.classify import (
    category,
    incident_id_for,
    needs_incident,
    severity,
    touched_units,
)
from changegate.incidents.review import build_incident, render_review, suggest

__all__ = [
    "build_incident",
    "category",
    "incident_id_for",
    "needs_incident",
    "render_review",
    "severity",
    "suggest",
    "touched_units",
]
