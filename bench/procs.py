"""Child processes of the benchmark: free ports, CPU time from /proc, fleet and worker."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from changegate.errors import ConfigurationError
from changegate.runtime import start_fleet as runtime_start_fleet
from changegate.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessFailed(RuntimeError):
    """A child process did not start or died."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds that process `pid` has used so far (from /proc)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


THREAD_GROUPS = ("asyncio loop thread", "other Python threads", "Rust core threads")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the live threads of a temporalio worker process `pid`, by group.

    The `asyncio loop thread` (the main thread) runs the activities, their payload conversion
    and the SDK's Python glue; `other Python threads` are mostly the workflow task executor
    (workflow code in its sandbox, workflow payload conversion); `Rust core threads` are the
    SDK core's runtimes (gRPC, protobuf). Python 3.11 does not name its OS threads, so Python
    threads are told apart from Rust ones by sharing the main thread's name.
    """
    groups = dict.fromkeys(THREAD_GROUPS, 0.0)
    python_name = Path(f"/proc/{pid}/comm").read_text().strip()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            seconds = cpu_seconds_of(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between listing and reading
        if task.name == str(pid):
            group = "asyncio loop thread"
        elif name == python_name:
            group = "other Python threads"
        else:
            group = "Rust core threads"
        groups[group] += seconds
    return groups


def cpu_seconds_of(stat_path: Path) -> float:
    """User plus system CPU seconds from one /proc `stat` file."""
    text = stat_path.read_text()
    # The command name (field 2) may contain spaces; the fields after it are plain numbers.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """User plus system CPU seconds of this process."""
    times = os.times()
    return times.user + times.system


def stop(process: subprocess.Popen[bytes] | None, *, timeout: float = 10.0) -> None:
    """Terminate `process` (if still running) and wait for it; kill it if it lingers."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def start_fleet(port: int, services: str, log_path: Path) -> subprocess.Popen[bytes]:
    """The fleet with `services` on `port`, with a 1 s health window; wait until it answers."""
    settings = Settings(fleet_url=f"http://127.0.0.1:{port}")
    try:
        return await runtime_start_fleet(settings, log_path=log_path, services=services, window=1.0)
    except ConfigurationError as exc:
        raise ProcessFailed(str(exc)) from exc


async def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m bench.worker_proc` with `env`; wait until it prints `ready`."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker_proc"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
    except TimeoutError:
        stop(process)
        raise ProcessFailed(f"the worker did not get ready within 60 s; see {log_path}") from None
    if line.strip() != b"ready":
        stop(process)
        raise ProcessFailed(f"the worker failed to start ({line!r}); see {log_path}")
    return process
