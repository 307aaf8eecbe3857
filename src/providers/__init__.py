"""Targets behind one interface, chosen by `kind`; each kind's provider lives in its kind's
package (`changegate.kinds.<kind>`)."""

from changegate.providers.base import Provider, ReadOnlyProvider, matches
from changegate.providers.phasing import phase_name, split_phases
from changegate.providers.registry import ProviderRegistry

__all__ = [
    "Provider",
    "ProviderRegistry",
    "ReadOnlyProvider",
    "matches",
    "phase_name",
    "split_phases",
]
