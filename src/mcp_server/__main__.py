"""`python -m changegate.mcp_server`: the `changegate mcp` command on its own."""

import os
import sys

from changegate.cli.mcp import mcp

try:
    mcp(prog_name="python -m changegate.mcp_server")
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
# As `changegate.cli.main` does: skip interpreter teardown, which the Temporal client's native
# threads can turn into a crash of a process that had finished cleanly.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
