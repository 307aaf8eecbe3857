"""Read the Prometheus text exposition format with `prometheus_client`'s own parser.

A hand-written parser used to live here; it decoded `\\\\n` inside a label value as a newline
even when the backslash was itself escaped (`C:\\\\new` came back with a real newline). The
reference parser handles every escape the format defines.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from changegate.errors import HealthSourceError

Sample = tuple[str, dict[str, str], float]


def parse(text: str, *, source: str = "metrics text") -> list[Sample]:
    """Every sample as (sample name, labels, value); `source` names the text in errors."""
    try:
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except ValueError as exc:
        raise HealthSourceError(
            f"{source} is not valid Prometheus text exposition: {exc}; check the URL serves "
            "/metrics in text format 0.0.4"
        ) from exc
