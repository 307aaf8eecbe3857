"""Target kinds: one package per kind, found through the `changegate.targets` entry points."""

from changegate.kinds.base import (
    KindInfo,
    Metric,
    Operation,
    OperationClass,
    Parameters,
    TargetKind,
)

__all__ = ["KindInfo", "Metric", "Operation", "OperationClass", "Parameters", "TargetKind"]
