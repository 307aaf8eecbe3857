"""changegate's settings: one class, `CHANGEGATE_` environment variables, flags override."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from changegate.models import NoticeKind
from changegate.notify.channels import Channel, WebhookChannel, named, subscribed


def user_data_dir() -> Path:
    """`$XDG_DATA_HOME/changegate` (else `~/.local/share/changegate`): never the cwd."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "changegate"


def user_config_dir() -> Path:
    """`$XDG_CONFIG_HOME/changegate` (else `~/.config/changegate`): where the CLI's login is."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "changegate"


class Settings(BaseSettings):
    """Where Temporal, the fleet, the API and the data directory are; read at the edges only."""

    model_config = SettingsConfigDict(env_prefix="CHANGEGATE_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "changegate"
    data_dir: Path = Field(default_factory=user_data_dir)
    """The server side's files: the audit store, the signing key, Temporal's SQLite file."""
    config_dir: Path = Field(default_factory=user_config_dir)
    """The client side's files: the credentials `changegate login` and `up` store."""
    fleet_url: str = "http://127.0.0.1:8710"
    ui_url: str = "http://127.0.0.1:8233"
    api_url: str = "http://127.0.0.1:8720"
    """The front door every client (CLI, MCP, Python) talks to."""
    token: SecretStr | None = None
    """The caller's API token; by default the one `changegate login` stored."""
    signing_key: SecretStr | None = None
    """The key admission tickets and decision proofs are signed with; shared by the API and
    every worker. By default `signing.key` in the data directory, made on first use (0600)."""
    ticket_ttl_seconds: float = 900.0
    """How long after admission a change's workflow may start with its ticket."""
    cookie_secure: bool = False
    """Mark the approval page's cookies `Secure` (set it when the page is served over https)."""
    prometheus_url: str | None = None
    """Judge fleet health from this Prometheus (scraping the fleet) instead of its /metrics."""
    database_url: str | None = None
    """The audit store: a SQLAlchemy URL; by default `changegate.db` in the data directory."""
    policy_file: Path | None = None
    """The policy YAML; by default the documented policy shipped with changegate."""
    notify_channels: list[Channel] = Field(default_factory=list)
    """Where notices go: a JSON list of channels, for example `[{"kind": "slack", "url":
    "https://hooks.example.com/T0/B0/x", "events": ["awaiting_approval"]}]`; kinds
    `webhook`, `slack` and `pagerduty` (with `routing_key`). URLs and keys are secrets: only
    the worker's delivery activity reads them."""
    escalation_webhook: SecretStr | None = None
    """A generic webhook channel for escalations only (a change near its approval deadline
    without a quorum); kept for deployments that set it before `notify_channels` existed."""
    search_attributes: bool = True
    """Tag changes with the Change* search attributes (the namespace must have them)."""
    reconcile_interval_seconds: float = 30.0
    """How often each worker releases the targets of changes whose workflows closed without
    recording it (terminated from the Temporal UI, or the audit store was down); 0 turns it off."""
    max_cached_workflows: int = Field(default=1000, ge=0)
    """Changes a worker keeps in memory between their steps (the sticky cache). Beyond it
    the least recently used is evicted and replayed from history on its next step (say,
    when it is approved): less memory per parked change, some CPU when one wakes."""
    api_metrics: bool = True
    """Serve Prometheus metrics at the API's `/metrics` (no token, like `/healthz`)."""
    worker_metrics_address: str | None = None
    """`host:port` where a worker serves Prometheus metrics (the workflow's and the Temporal
    SDK's), e.g. `127.0.0.1:9464`; off by default, as each worker on a host needs its own."""
    otlp_endpoint: str | None = None
    """An OTLP/HTTP collector's base URL (e.g. `http://127.0.0.1:4318`) to send traces to;
    the standard `OTEL_EXPORTER_OTLP_ENDPOINT` also turns tracing on."""

    @model_validator(mode="after")
    def _channel_names_unique(self) -> Settings:
        self.channels()
        return self

    def channels(self) -> dict[str, Channel]:
        """Every notify channel by name, the escalation webhook (if set) among them."""
        listed = list(self.notify_channels)
        if self.escalation_webhook is not None:
            listed.append(
                WebhookChannel(
                    name="escalation-webhook",
                    url=self.escalation_webhook,
                    events=[NoticeKind.ESCALATION],
                )
            )
        return named(listed)

    def notify_kinds(self) -> list[NoticeKind]:
        """The notice kinds some channel takes: the front door tells each change these."""
        return subscribed(list(self.channels().values()))

    def store_url(self) -> str:
        """The audit store's URL."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'changegate.db').resolve()}"

    def workflow_url(self, workflow_id: str) -> str:
        """The Temporal web UI page of one change."""
        return f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"

    def page_url(self, change_id: str) -> str:
        """The approval page of one change."""
        return f"{self.api_url}/ui/changes/{change_id}"
