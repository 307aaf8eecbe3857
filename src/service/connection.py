"""Connecting to Temporal the way every changegate client and worker must."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from changegate.errors import TemporalUnreachable
from changegate.observability.tracing import tracing_interceptors
from changegate.settings import Settings
from changegate.workflows import SEARCH_ATTRIBUTES

__all__ = ["TemporalUnreachable", "connect", "ensure_search_attributes"]


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """A client with the pydantic data converter (traced when an OTLP endpoint is set, on
    `runtime` if given), or `TemporalUnreachable` saying where."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=pydantic_data_converter,
            interceptors=tracing_interceptors(settings),
            runtime=runtime,
        )
    except RuntimeError as exc:
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); start one with "
            "`changegate up`, or point CHANGEGATE_TEMPORAL_ADDRESS / --temporal-address at yours"
        ) from exc


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register changegate's search attributes that the namespace lacks; returns those added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTES}
    missing = {name: kind for name, kind in missing.items() if name not in known}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as exc:
            raise TemporalUnreachable(
                f"could not register search attributes {', '.join(missing)}: {exc.message}; "
                "register them as Keyword with `temporal operator search-attribute create`"
            ) from exc
    return sorted(missing)
