"""Admission: the single gate every entry point passes a change request through."""

from changegate.admission.gate import AdmissionRefused, Gate, read_open_incidents

__all__ = ["AdmissionRefused", "Gate", "read_open_incidents"]
