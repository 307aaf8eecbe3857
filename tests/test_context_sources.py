"""Context sources: a file and an HTTP endpoint, read for real; failures are reported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from changegate.context import FileContextSource, HttpContextSource, gather_flags

DOC = 'flags:\n  "fleet:service=payments": {payments.strict_idempotency: true}\n'


@pytest.fixture
def http_source() -> Iterator[str]:
    """A loopback HTTP server: /flags serves a context document, /broken a 500."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/flags"
            body = (DOC if ok else "boom").encode()
            self.send_response(200 if ok else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_and_file_sources_merge_by_target_glob(http_source: str, tmp_path: Path) -> None:
    local = tmp_path / "context.yaml"
    local.write_text('flags:\n  "fleet:*": {global.degraded_mode: false}\n')
    flags, errors = await gather_flags(
        [HttpContextSource(f"{http_source}/flags"), FileContextSource(local)]
    )
    assert errors == []
    assert flags == {
        "fleet:service=payments": {"payments.strict_idempotency": True},
        "fleet:*": {"global.degraded_mode": False},
    }


async def test_unreadable_sources_are_reported_not_ignored(
    http_source: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("flags: [not, a, mapping]\n")
    flags, errors = await gather_flags(
        [
            HttpContextSource(f"{http_source}/broken"),
            FileContextSource(tmp_path / "missing.yaml"),
            FileContextSource(bad),
        ]
    )
    assert flags == {}
    assert len(errors) == 3
    assert "/broken" in errors[0] and "500" in errors[0]
    assert "missing.yaml" in errors[1]
    assert "is not a context document" in errors[2]
