"""The one boundary to the Kubernetes API: lightkube clients per kubeconfig context, plain-dict
objects, and every client error mapped once to changegate's typed errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig, operators
from lightkube.core.resource import NamespacedResource
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from changegate.errors import (
    ConfigurationError,
    TargetNotFound,
    TargetUnavailable,
    UnsupportedOperation,
)
from changegate.kinds.kubernetes.errors import AccessDenied, WorkloadConflict
from changegate.kinds.kubernetes.selector import parse_labels

FIELD_MANAGER = "changegate"
RESOURCES: dict[str, type[NamespacedResource]] = {
    "deployment": Deployment,
    "statefulset": StatefulSet,
    "configmap": ConfigMap,
}
Obj = dict[str, Any]


class Clusters:
    """One lazily built lightkube client per kubeconfig context, all from one kubeconfig."""

    def __init__(
        self,
        kubeconfig: Path | None,
        *,
        timeout: float = 10.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        """Read `kubeconfig` (by default `$KUBECONFIG` or `~/.kube/config`) on first use."""
        self._path = kubeconfig
        self._timeout = timeout
        self._transport = transport
        self._config: KubeConfig | None = None
        self._clients: dict[str, AsyncClient] = {}

    async def aclose(self) -> None:
        """Close every client."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    def client(self, context: str) -> AsyncClient:
        """The client of `context`; `ConfigurationError` if the kubeconfig has no such context."""
        if context not in self._clients:
            try:
                if self._config is None:
                    self._config = (
                        KubeConfig.from_file(self._path) if self._path else KubeConfig.from_env()
                    )
                single = self._config.get(context_name=context)
            except ConfigError as exc:
                raise ConfigurationError(
                    f"kubeconfig {self._path or '$KUBECONFIG'} cannot serve context "
                    f"{context!r}: {exc}; set CHANGEGATE_KUBERNETES_KUBECONFIG to a kubeconfig "
                    "that has it"
                ) from exc
            self._clients[context] = AsyncClient(
                config=single,
                field_manager=FIELD_MANAGER,
                timeout=httpx2.Timeout(self._timeout),
                transport=self._transport,
                trust_env=False,
                lazy=False,
            )
        return self._clients[context]

    async def get(self, context: str, kind: str, name: str, *, namespace: str) -> Obj:
        """One object as a dict."""
        async with _mapped(f"GET {kind} {namespace}/{name} in {context}"):
            obj = await self.client(context).get(RESOURCES[kind], name, namespace=namespace)
        return _as_dict(obj, kind)

    async def get_optional(
        self, context: str, kind: str, name: str, *, namespace: str
    ) -> Obj | None:
        """One object as a dict, or None if it does not exist."""
        try:
            return await self.get(context, kind, name, namespace=namespace)
        except TargetNotFound:
            return None

    async def list(self, context: str, kind: str, *, namespace: str, labels: str) -> list[Obj]:
        """The objects matching the label selector, sorted by name."""
        # `resolve` refused repeated keys, so a dict keeps every requirement.
        selector = {
            req.key: _operator(req.op, req.values) for req in parse_labels(labels, field="labels")
        }
        async with _mapped(f"LIST {kind} {namespace} ({labels}) in {context}"):
            items = [
                _as_dict(obj, kind)
                async for obj in self.client(context).list(
                    RESOURCES[kind], namespace=namespace, labels=selector
                )
            ]
        return sorted(items, key=lambda item: str(item["metadata"]["name"]))

    async def patch(self, context: str, kind: str, name: str, body: Obj, *, namespace: str) -> Obj:
        """A strategic merge patch, recorded under the field manager `changegate`."""
        async with _mapped(f"PATCH {kind} {namespace}/{name} in {context}"):
            obj = await self.client(context).patch(
                RESOURCES[kind],
                name,
                body,
                namespace=namespace,
                patch_type=PatchType.STRATEGIC,
                field_manager=FIELD_MANAGER,
            )
        return _as_dict(obj, kind)


def _operator(op: str, values: tuple[str, ...]) -> Any:
    if op == "=":
        return operators.equal(values[0])
    if op == "!=":
        return operators.not_equal(values[0])
    if op == "in":
        return operators.in_(values)
    if op == "notin":
        return operators.not_in(values)
    if op == "!":
        return operators.not_exists()
    return operators.exists()


def _as_dict(obj: Any, kind: str) -> Obj:
    data: Obj = obj.to_dict()
    # lightkube leaves `kind` out of objects read one by one; progress() needs it.
    data.setdefault("kind", RESOURCES[kind].__name__)
    return data


@asynccontextmanager
async def _mapped(what: str) -> AsyncIterator[None]:
    try:
        yield
    except ApiError as exc:
        code = exc.status.code or exc.response.status_code
        text = (
            f"the API server answered {what} with {code} {exc.status.reason}: {exc.status.message}"
        )
        if code == 404:
            raise TargetNotFound(f"{text}; observe the target to see what exists") from exc
        if code == 409:
            raise WorkloadConflict(
                f"{text}; someone else changed the object since changegate read it, so nothing "
                "was written: observe it again and decide"
            ) from exc
        if code in (401, 403):
            raise AccessDenied(
                f"{text}; give the kubeconfig's identity get/list/patch on the workload, or use "
                "a context that has it"
            ) from exc
        if code in (400, 422):
            raise UnsupportedOperation(f"{text}; the change is not valid for this object") from exc
        raise TargetUnavailable(f"{text}; retrying") from exc
    except httpx2.HTTPError as exc:
        raise TargetUnavailable(f"the API server did not answer {what}: {exc!r}") from exc
