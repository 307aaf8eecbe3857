"""Prometheus text exposition (format 0.0.4) of the fleet's per-instance metrics."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final

from changegate.fleet.estate import Fleet
from changegate.fleet.model import Instance

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_Labels = tuple[tuple[str, str], ...]


def render_metrics(
    fleet: Fleet, *, service: str | None = None, instances: Collection[str] = ()
) -> str:
    """Return the metrics of every instance as Prometheus text, ending with a newline.

    `service` keeps only that service's instances and `instances` (when not empty) only
    those instance ids, so a reader that wants a few units does not download the fleet.
    An unknown name filters to nothing rather than failing: absent series are missing data.
    """
    wanted = frozenset(instances)
    selected = [
        instance
        for instance in fleet.instances()
        if (service is None or instance.service == service)
        and (not wanted or instance.instance_id in wanted)
    ]
    return _render(selected)


def _render(instances: list[Instance]) -> str:
    lines: list[str] = []
    _family(
        lines,
        name="fleet_requests_total",
        kind="counter",
        help_text="Requests served by the instance since start or reset, by outcome.",
        samples=(
            (_labels(instance, ("outcome", outcome)), count)
            for instance in instances
            for outcome, count in (("ok", instance.ok_total), ("error", instance.error_total))
        ),
    )
    healths = [(instance, instance.health()) for instance in instances]
    _family(
        lines,
        name="fleet_error_ratio",
        kind="gauge",
        help_text="Fraction of the instance's requests that failed over the health window.",
        samples=((_labels(instance), health.error_rate) for instance, health in healths),
    )
    _family(
        lines,
        name="fleet_latency_p99_seconds",
        kind="gauge",
        help_text="99th percentile request latency of the instance over the health window.",
        samples=((_labels(instance), health.latency_p99_ms / 1000) for instance, health in healths),
    )
    _family(
        lines,
        name="fleet_config_writes_total",
        kind="counter",
        help_text="Config writes applied to the instance since start or reset.",
        samples=((_labels(instance), instance.writes) for instance in instances),
    )
    _family(
        lines,
        name="fleet_instance_info",
        kind="gauge",
        help_text="Always 1; labels carry the version the instance is configured to run.",
        samples=(
            (_labels(instance, ("version", instance.config.version)), 1) for instance in instances
        ),
    )
    return "\n".join(lines) + "\n"


def escape_label_value(value: str) -> str:
    """Escape a label value as the text format requires: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(instance: Instance, *extra: tuple[str, str]) -> _Labels:
    return (("service", instance.service), ("instance", instance.instance_id), *extra)


def _family(
    lines: list[str],
    *,
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[_Labels, int | float]],
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        rendered = ",".join(f'{key}="{escape_label_value(text)}"' for key, text in labels)
        lines.append(f"{name}{{{rendered}}} {_number(value)}")


def _number(value: int | float) -> str:
    # repr gives the shortest round-tripping float, which Prometheus parses as-is.
    return str(value) if isinstance(value, int) else repr(float(value))
