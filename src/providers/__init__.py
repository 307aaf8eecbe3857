"""Targets behind one interface, chosen by `kind`."""

from changegate.providers.base import Provider, ReadOnlyProvider, matches
from changegate.providers.fleet import FleetProvider
from changegate.providers.phasing import phase_name, split_phases
from changegate.providers.registry import ProviderRegistry

__all__ = [
    "FleetProvider",
    "Provider",
    "ProviderRegistry",
    "ReadOnlyProvider",
    "matches",
    "phase_name",
    "split_phases",
]
