"""Admission: the single gate every entry point passes a change request through."""

from changegate.admission.gate import AdmissionRefused, Gate

__all__ = ["AdmissionRefused", "Gate"]
