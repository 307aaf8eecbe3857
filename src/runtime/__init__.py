"""Running changegate locally: the embedded Temporal dev server, the fleet, the worker."""

from changegate.runtime.devserver import (
    DevServer,
    dev_server_args,
    find_binary,
    port_open,
    start_dev_server,
)
from changegate.runtime.stack import Stack, running_stack, start_fleet

__all__ = [
    "DevServer",
    "Stack",
    "dev_server_args",
    "find_binary",
    "port_open",
    "running_stack",
    "start_dev_server",
    "start_fleet",
]
