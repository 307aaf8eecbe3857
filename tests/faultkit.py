"""Fault injection for the end-to-end fault suite: real sockets and processes on loopback.

* `TcpProxy` sits between changegate and one dependency (the audit store, the fleet).
  `cut()` resets every open connection and resets each new one at once, `restore()`
  forwards again. A `Tripwire` fires on the exact request that should meet the fault
  (matched in the bytes the client sends): it loses that request, or lets it through and
  loses its answer, then cuts, or runs a callback (SIGKILL a worker, say).
  The proxy runs its own event loop in its own thread, like a separate network element, so
  a blocking client on the test's loop can never stall it.
* `through` routes a URL via a proxy (`tests.support.postgres_schema` gives the schema).
* `TemporalServer` is a dev server this test owns, to SIGKILL and start again on its file.
* `WorkerProcess` is `python -m changegate worker` as a child process.
* The checks every case makes: `unit_steps` (changegate's writes per unit from the fleet's
  write log), `assert_audit_complete`, `assert_target_free`, and `report` for the time from
  the fault clearing to the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from changegate.admission import AdmissionRefused
from changegate.models import ChangeStatus, Decision, Outcome, Stage
from changegate.runtime.devserver import DevServer, port_open, start_dev_server
from changegate.service import ChangeService
from changegate.settings import Settings
from changegate.store import (
    Store,
    close_incident,
    get_change,
    list_events,
)
from tests.support import (
    TEST_POLICY,
    free_port,
    make_request,
    wait_for_stage,
    wait_until,
)

Lose = Literal["request", "response"]
Pattern = bytes | str | re.Pattern[bytes]


# ---- the proxy -----------------------------------------------------------------------------


@dataclass(eq=False)
class Tripwire:
    """Fires on the first client chunk that completes `patterns`, matched in order across
    the proxy's traffic (each pattern after the previous one's match)."""

    patterns: list[re.Pattern[bytes]]
    lose: Lose
    cut: bool
    then: Callable[[], None] | None
    matched: int = 0
    tripped: bool = False
    fired_at: float | None = None
    fired_wall: datetime | None = None
    request_line: str = ""
    error: BaseException | None = None
    _event: threading.Event = field(default_factory=threading.Event)

    @property
    def fired(self) -> bool:
        """True once the fault was injected."""
        return self._event.is_set()

    def feed(self, data: bytes) -> bool:
        """Advance over one chunk the client sent; True when the last pattern matched."""
        if self.tripped:
            return False
        pos = 0
        while self.matched < len(self.patterns):
            found = self.patterns[self.matched].search(data, pos)
            if found is None:
                return False
            self.matched += 1
            pos = found.end()
        self.tripped = True
        return True

    async def wait(self, *, within: float, what: str) -> None:
        """Wait (polling: the proxy lives in another thread) until the wire has fired."""
        await wait_until(lambda: self.fired, within=within, interval=0.05, what=what)
        if self.error is not None:
            raise AssertionError(f"the tripwire's action failed: {self.error!r}")


def _compile(pattern: Pattern) -> re.Pattern[bytes]:
    if isinstance(pattern, re.Pattern):
        return pattern
    raw = pattern.encode() if isinstance(pattern, str) else pattern
    return re.compile(re.escape(raw))


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    closed: bool = False
    lose_response: Tripwire | None = None

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        _reset(self.client)
        self.upstream.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees the connection cut, not ended."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port`, and cuts it on demand."""

    def __init__(self, target_host: str, target_port: int, *, name: str) -> None:
        """A proxy for `name`; nothing listens before `start()` (or `with`)."""
        self.name = name
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.reset_on_accept = 0
        self.cut_at: float | None = None
        self.restored_at: float | None = None
        self.restored_wall: datetime | None = None
        self._cut = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wires: list[Tripwire] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)
        self._server: asyncio.Server | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    @classmethod
    def for_url(cls, url: str, *, name: str) -> TcpProxy:
        """A proxy in front of the host and port of an http(s) URL."""
        parsed = urlsplit(url)
        assert parsed.hostname and parsed.port, f"{url} names no host and port"
        return cls(parsed.hostname, parsed.port, name=name)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:port`, for an HTTP dependency."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        """True while the dependency is cut off."""
        return self._cut

    # -- life cycle (called from the test's thread) --

    def start(self) -> TcpProxy:
        """Listen on a free loopback port; returns once connections are accepted."""
        self._thread.start()
        self._started.wait(10)
        if self._start_error is not None:
            raise self._start_error
        assert self.port, f"the {self.name} proxy did not start"
        return self

    def close(self) -> None:
        """Stop listening, reset every connection, stop the proxy's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def cut(self) -> None:
        """Reset every open connection; reset each new one as soon as it is accepted."""
        self._call(self._do_cut)

    def restore(self) -> datetime:
        """Forward again; returns the wall-clock time the fault cleared."""
        self._call(self._do_restore)
        assert self.restored_wall is not None
        return self.restored_wall

    def trip_on(
        self,
        *patterns: Pattern,
        lose: Lose,
        cut: bool = True,
        then: Callable[[], None] | None = None,
    ) -> Tripwire:
        """Arm a tripwire: on the chunk completing `patterns`, lose that request (or let it
        through and lose its response), run `then`, and cut (else reset only that link)."""
        wire = Tripwire([_compile(p) for p in patterns], lose=lose, cut=cut, then=then)
        self._call(lambda: self._wires.append(wire))
        return wire

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    # -- the proxy's own thread --

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._accept, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._drain_tasks())
            self._loop.close()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()

    async def _drain_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _do_cut(self) -> None:
        if not self._cut:
            self._cut = True
            self.cut_at = time.monotonic()
        for link in list(self._links):
            link.abort()

    def _do_restore(self) -> None:
        self._cut = False
        self.restored_at = time.monotonic()
        self.restored_wall = datetime.now(UTC)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.reset_on_accept += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.accepted += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump(reader, link, from_client=True),
                self._pump(up_reader, link, from_client=False),
            )
        finally:
            link.abort()
            self._links.discard(link)

    async def _pump(self, source: asyncio.StreamReader, link: _Link, *, from_client: bool) -> None:
        sink = link.upstream if from_client else link.client
        try:
            while not link.closed:
                data = await source.read(65536)
                if not data or link.closed:
                    return
                if from_client:
                    tripped = [w for w in self._wires if w.feed(data)]
                    if tripped:
                        wire = tripped[0]
                        wire.request_line = data.split(b"\r\n", 1)[0][:200].decode("latin-1")
                        if wire.lose == "request":
                            self._fire(wire, link)
                            return
                        link.lose_response = wire
                elif link.lose_response is not None:
                    self._fire(link.lose_response, link)
                    return
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            return
        finally:
            link.abort()

    def _fire(self, wire: Tripwire, link: _Link) -> None:
        wire.fired_at = time.monotonic()
        wire.fired_wall = datetime.now(UTC)
        # The action first: a worker to be killed must not see its connection reset.
        if wire.then is not None:
            try:
                wire.then()
            except BaseException as exc:
                wire.error = exc
        link.abort()
        if wire.cut:
            self._do_cut()
        wire._event.set()


# ---- PostgreSQL ----------------------------------------------------------------------------


def through(url: URL, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    return url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


# ---- Temporal and worker processes ---------------------------------------------------------


class TemporalServer:
    """A Temporal dev server this test owns: SQLite file in WAL mode, fixed ports."""

    def __init__(self, data_dir: Path) -> None:
        """Pick free ports; nothing runs before `start()`."""
        self.data_dir = data_dir
        self.port = free_port()
        self.ui_port = free_port()
        self._server: DevServer | None = None

    @property
    def address(self) -> str:
        """host:port of the frontend."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> datetime:
        """Start (or start again, on the same file and ports); returns when it listens."""
        await wait_until(
            lambda: not port_open("127.0.0.1", self.port),
            within=15,
            what=f"port {self.port} to be free",
        )
        self._server = await start_dev_server(
            data_dir=self.data_dir, port=self.port, ui_port=self.ui_port
        )
        return datetime.now(UTC)

    def sigkill(self) -> None:
        """SIGKILL the server, as a crash would: no shutdown, no flush."""
        assert self._server is not None
        process = self._server.process
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self._server is not None:
            self._server.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log."""
        return _tail(self.data_dir / "temporal.log", lines)


def worker_env(settings: Settings, *, task_queue: str, fleet_url: str) -> dict[str, str]:
    """The environment of a `changegate worker` child sharing the session's data directory
    (its audit store and signing key) and the test policy, and nothing of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHANGEGATE_")}
    env.update(
        CHANGEGATE_TEMPORAL_ADDRESS=settings.temporal_address,
        CHANGEGATE_TASK_QUEUE=task_queue,
        CHANGEGATE_FLEET_URL=fleet_url,
        CHANGEGATE_DATA_DIR=str(settings.data_dir),
        CHANGEGATE_POLICY_FILE=str(TEST_POLICY),
    )
    return env


class WorkerProcess:
    """`python -m changegate worker` as a child process, logging to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        """Start the worker now."""
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "changegate", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.started_wall = datetime.now(UTC)

    def sigkill(self) -> None:
        """SIGKILL it (safe from any thread); reaped by `stop()`."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Terminate it if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait(timeout=15)

    def tail(self, lines: int = 30) -> str:
        """The end of its log."""
        return _tail(self.log, lines)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# ---- what every case checks ----------------------------------------------------------------


def unit_steps(write_log: list[dict[str, Any]], change_id: str) -> dict[str, dict[str, int]]:
    """changegate's writes of one change per unit and step (apply, revert), from the fleet's
    write log: the idempotency key of each is `change_id:unit:step`."""
    counts: dict[str, Counter[str]] = {}
    for write in write_log:
        parts = write["idempotency_key"].split(":")
        if len(parts) == 3 and parts[0] == change_id:
            assert parts[1] == write["instance"], write
            counts.setdefault(parts[1], Counter())[parts[2]] += 1
    return {unit: dict(steps) for unit, steps in sorted(counts.items())}


def other_writes(write_log: list[dict[str, Any]], change_id: str) -> list[dict[str, Any]]:
    """Writes in the log that this change did not make (hand edits, other changes)."""
    return [w for w in write_log if not w["idempotency_key"].startswith(change_id + ":")]


def applied_units(final: ChangeStatus) -> list[str]:
    """Units the change got as far as applying (whatever became of them after)."""
    return [u.unit_id for u in final.units if u.status != "pending"]


def assert_steps(
    steps: dict[str, dict[str, int]], final: ChangeStatus, *, reverted: bool, context: str
) -> None:
    """Every unit the change applied was applied exactly once, and (`reverted`) reverted
    at most once; no unit it did not reach was written at all."""
    assert final.plan is not None, context
    touched = set(applied_units(final))
    for unit in final.plan.units():
        got = steps.get(unit.unit_id, {})
        if unit.unit_id not in touched:
            assert got == {}, f"{unit.unit_id} was never reached but written {got}; {context}"
            continue
        assert got.get("apply") == 1, f"{unit.unit_id} applied {got}; {context}"
        limit = 1 if reverted else 0
        assert got.get("revert", 0) <= limit, f"{unit.unit_id} reverted {got}; {context}"
    unknown = set(steps) - {u.unit_id for u in final.plan.units()}
    assert not unknown, f"writes to units outside the plan: {unknown}; {context}"


def assert_audit_complete(store: Store, final: ChangeStatus) -> None:
    """The store's row has the outcome (the target's reservation is released) and its
    events are the workflow's timeline, one row per event, in order."""
    with store.session() as session:
        row = get_change(session=session, change_id=final.change_id)
        events = list_events(session=session, change_id=final.change_id)
        stored = [(e.seq, e.stage, e.kind) for e in events]
    assert row is not None, f"no row for {final.change_id}"
    assert final.outcome is not None
    assert (row.stage, row.outcome) == ("ENDED", final.outcome.value), (row.stage, row.outcome)
    expected = [(i, e.stage.value, e.kind) for i, e in enumerate(final.timeline)]
    assert len(stored) == len(final.timeline), (
        f"the store holds {len(stored)} events, the workflow's timeline {len(final.timeline)}: "
        f"missing {sorted(set(expected) - set(stored))[:5]}, extra "
        f"{sorted(set(stored) - set(expected))[:5]}"
    )
    assert stored == expected


async def stored_outcome_after(store: Store, final: ChangeStatus, *, within: float) -> datetime:
    """Poll the store (from a thread: it may be slow to answer) until its row of the change
    shows the outcome; returns when it first did."""

    def read() -> str | None:
        with store.session() as session:
            row = get_change(session=session, change_id=final.change_id)
            return None if row is None else row.outcome

    assert final.outcome is not None
    want = final.outcome.value

    async def shows() -> bool:
        return await asyncio.to_thread(read) == want

    await wait_until(shows, within=within, interval=0.25, what="the store's row to show it")
    return datetime.now(UTC)


async def assert_target_free(
    changes: ChangeService, store: Store, final: ChangeStatus, *, unit_count: int
) -> str:
    """A new change on the same target is admitted: the ended change no longer holds it.

    The only refusal allowed on the way is `incident_freeze` for the incident the ended
    change opened (it freezes its target by design, and is checked before
    `one_active_change`): the incident is closed, as its responder would, and the change
    submitted again. The probe is then rejected, so it ends having written nothing.
    Returns its id.
    """
    probe = make_request(
        service=final.request.target.selector["service"],
        parameters={"log_level": "debug"},
        assumptions={"unit_count": unit_count},
    )
    try:
        probe_id = await changes.submit(probe)
    except AdmissionRefused as refused:
        assert final.incident_id is not None, f"{final.change_id} still holds its target: {refused}"
        assert refused.rule == "incident_freeze", refused
        with store.session() as session:
            closed = close_incident(
                session=session, incident_id=final.incident_id, at=datetime.now(UTC)
            )
        assert closed is not None, f"no incident {final.incident_id} in the store"
        probe_id = await changes.submit(probe)
    await wait_for_stage(changes, probe_id, Stage.AWAITING_APPROVAL, within=60)
    await changes.reject(probe_id, Decision(actor="alice", reason="fault-suite probe"))
    ended = await asyncio.wait_for(changes.wait(probe_id), timeout=60)
    assert ended.outcome == Outcome.REJECTED, ended.timeline[-3:]
    return probe_id


def outcome_event_at(final: ChangeStatus) -> datetime:
    """Workflow time at which the outcome was decided (its `outcome` timeline event)."""
    return next(e.at for e in reversed(final.timeline) if e.kind == "outcome")


def report(
    record_property: Callable[[str, object], None],
    fault: str,
    *,
    cleared: datetime,
    final: ChangeStatus,
    closed: datetime,
    steps: dict[str, dict[str, int]],
    stored: datetime | None = None,
) -> str:
    """Record (junit properties) and print how long the change took after the fault."""
    decided = (outcome_event_at(final) - cleared).total_seconds()
    done = (closed - cleared).total_seconds()
    outcome = final.outcome.value if final.outcome else None
    record_property(f"{fault}.outcome", outcome)
    record_property(f"{fault}.cleared_to_outcome_s", round(decided, 1))
    record_property(f"{fault}.cleared_to_closed_s", round(done, 1))
    record_property(f"{fault}.writes", steps)
    after = [e for e in final.timeline if e.at >= cleared]
    line = f"[fault {fault}] {outcome}: "
    if after:
        first = (after[0].at - cleared).total_seconds()
        record_property(f"{fault}.cleared_to_first_progress_s", round(first, 1))
        line += f"first progress ({after[0].kind}) {first:.1f}s, "
    line += (
        f"outcome decided {decided:+.1f}s and workflow closed {done:.1f}s after the fault cleared"
    )
    if stored is not None:
        in_store = (stored - cleared).total_seconds()
        record_property(f"{fault}.cleared_to_stored_s", round(in_store, 1))
        line += f", the store showed it {in_store:.1f}s after"
    line += f"; writes per unit {steps}"
    print(line)
    return line


async def bounded(what: str, seconds: float, awaitable: Awaitable[Any]) -> Any:
    """`awaitable`, or an AssertionError naming `what` after `seconds`."""
    try:
        return await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        raise AssertionError(f"{what}: nothing after {seconds:g}s") from None
