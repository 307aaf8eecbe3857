"""Target kinds: one package per kind, found through the `changegate.targets` entry points."""

from changegate.kinds.base import (
    KindInfo,
    Metric,
    Operation,
    Parameters,
    TargetKind,
)
from changegate.kinds.checks import describe, parameter_summary
from changegate.kinds.registry import ENTRY_POINT_GROUP, KindRegistry
from changegate.kinds.text import describe_kinds
from changegate.models.request import OperationClass

__all__ = [
    "ENTRY_POINT_GROUP",
    "KindInfo",
    "KindRegistry",
    "Metric",
    "Operation",
    "OperationClass",
    "Parameters",
    "TargetKind",
    "describe",
    "describe_kinds",
    "parameter_summary",
]
