"""The `fleet` kind: the demo fleet shipped with changegate, one unit per service instance.

Registered through the `changegate.targets` entry point `fleet = "changegate.kinds.fleet:KIND"`.
"""

from changegate.kinds.fleet.kind import KIND, FleetKind
from changegate.kinds.fleet.provider import FleetProvider
from changegate.kinds.fleet.schema import FleetSelector, SetConfig

__all__ = ["KIND", "FleetKind", "FleetProvider", "FleetSelector", "SetConfig"]
