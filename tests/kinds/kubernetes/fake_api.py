"""A loopback Kubernetes API server replaying recorded apps/v1 and core/v1 responses.

It keeps objects loaded from `recorded/*.json` and answers GET, LIST and PATCH as the real
API server does for the shapes changegate uses: a PATCH carrying a stale
`metadata.resourceVersion` answers the recorded 409 Status; a PATCH that changes the pod
template or replicas bumps `generation` and, if a recorded rollout is queued for the object,
later GETs walk through its recorded statuses one per GET. Errors can be queued per request.
Every request is recorded for assertions.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED = Path(__file__).parent / "recorded"
_COLLECTIONS = ("deployments", "statefulsets", "configmaps")
Obj = dict[str, Any]


def recorded(name: str) -> Any:
    """One recorded response body."""
    return json.loads((RECORDED / f"{name}.json").read_text())


def _path(obj: Obj) -> str:
    meta = obj["metadata"]
    group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    plural = obj["kind"].lower() + "s"
    return f"{group}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def _merge(base: Any, patch: Any) -> Any:
    """A strategic merge patch as the API server applies it to the fields changegate patches."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and key in ("containers", "env"):
            out[key] = _merge_list(base.get(key, []), value)
        else:
            out[key] = _merge(base.get(key), value)
    return out


def _merge_list(base: list[Obj], patch: list[Obj]) -> list[Obj]:
    # containers and env merge by their `name` key; `$patch: delete` removes an entry.
    items = [dict(item) for item in base]
    for entry in patch:
        index = next((i for i, item in enumerate(items) if item["name"] == entry["name"]), None)
        if entry.get("$patch") == "delete":
            if index is not None:
                items.pop(index)
        elif index is None:
            items.append(entry)
        else:
            merged = _merge(items[index], entry)
            if "value" in entry:
                merged.pop("valueFrom", None)
            items[index] = merged
    return items


class FakeApi:
    """The objects, queued statuses and errors, and the requests seen."""

    def __init__(self) -> None:
        """An empty cluster."""
        self.objects: dict[str, Obj] = {}
        self.rollouts: dict[str, list[Obj]] = {}
        self.armed: set[str] = set()
        self.controller = True
        """Whether rollouts without recorded statuses complete (False: they never progress)."""
        self.errors: dict[tuple[str, str], list[Obj]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.url = ""

    def add(self, obj: Obj) -> str:
        """Store an object; its API path."""
        path = _path(obj)
        self.objects[path] = copy.deepcopy(obj)
        return path

    def queue_rollout(self, path: str, statuses: list[Obj]) -> None:
        """The statuses later GETs of `path` report, one per GET, after its next spec change."""
        self.rollouts[path] = copy.deepcopy(statuses)

    def fail(self, method: str, path: str, status: Obj) -> None:
        """Answer the next `method` on `path` with a recorded error Status."""
        self.errors.setdefault((method, path), []).append(status)

    def patches(self, path: str | None = None) -> list[dict[str, Any]]:
        """The PATCH requests seen, optionally of one path."""
        return [r for r in self.requests if r["method"] == "PATCH" and path in (None, r["path"])]

    def handle(self, method: str, url: str, headers: dict[str, str], body: Any) -> tuple[int, Obj]:
        """Answer one request."""
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        with self.lock:
            self.requests.append(
                {"method": method, "path": path, "query": query, "headers": headers, "body": body}
            )
            queued = self.errors.get((method, path))
            if queued:
                status = queued.pop(0)
                return status["code"], status
            if method == "GET" and path in self.objects:
                return 200, self._get(path)
            if method == "GET" and path.rsplit("/", 1)[1] in _COLLECTIONS:
                return self._list(path, query)
            if method == "PATCH" and path in self.objects:
                return self._patch(path, body)
            return 404, recorded("status-404")

    def _get(self, path: str) -> Obj:
        obj = self.objects[path]
        pending = self.rollouts.get(path)
        if "status" not in obj:
            return copy.deepcopy(obj)
        if path in self.armed and pending:
            obj["status"] = pending.pop(0)
        elif path in self.armed and self.controller:
            # No recorded rollout left: the controller finishes at once.
            want = obj["spec"].get("replicas", 1)
            obj["status"] = dict(
                obj["status"],
                observedGeneration=obj["metadata"]["generation"],
                replicas=want,
                updatedReplicas=want,
                readyReplicas=want,
                availableReplicas=want,
            )
            self.armed.discard(path)
        return copy.deepcopy(obj)

    def _list(self, path: str, query: dict[str, list[str]]) -> tuple[int, Obj]:
        wanted = dict(
            term.split("=", 1) for term in query.get("labelSelector", [""])[0].split(",") if term
        )
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self.objects.items())
            if key.rsplit("/", 1)[0] == path
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        kind = {"deployments": "DeploymentList", "statefulsets": "StatefulSetList"}.get(
            path.rsplit("/", 1)[1], "ConfigMapList"
        )
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        body = {
            "kind": kind,
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": "52000"},
            "items": items,
        }
        return 200, body

    def _patch(self, path: str, body: Obj) -> tuple[int, Obj]:
        obj = self.objects[path]
        sent = body.get("metadata", {}).get("resourceVersion")
        if sent is not None and sent != obj["metadata"]["resourceVersion"]:
            return 409, recorded("status-409")
        merged = _merge(obj, {k: v for k, v in body.items() if k != "metadata"})
        merged["metadata"] = dict(obj["metadata"])
        merged["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
        if "generation" in obj["metadata"] and merged.get("spec") != obj.get("spec"):
            merged["metadata"]["generation"] = obj["metadata"]["generation"] + 1
            self.armed.add(path)
        self.objects[path] = merged
        return 200, copy.deepcopy(merged)


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = api.handle(self.command, self.path, dict(self.headers), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving() -> Iterator[FakeApi]:
    """A fake API server on a free loopback port, for the duration of the block."""
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def kubeconfig(path: Path, url: str, contexts: tuple[str, ...] = ("prod-eu",)) -> Path:
    """A kubeconfig whose contexts all reach `url` with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "worker", "user": {"token": "recorded-token"}}],
        "contexts": [
            {"name": name, "context": {"cluster": "fake", "user": "worker", "namespace": "shop"}}
            for name in contexts
        ],
        "current-context": contexts[0],
    }
    path.write_text(json.dumps(config))
    return path
