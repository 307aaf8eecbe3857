"""changegate's settings: one class, `CHANGEGATE_` environment variables, flags override."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Temporal, the fleet and the data directory are; read at the edges only."""

    model_config = SettingsConfigDict(env_prefix="CHANGEGATE_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "changegate"
    data_dir: Path = Path(".changegate")
    fleet_url: str = "http://127.0.0.1:8710"
    ui_url: str = "http://127.0.0.1:8233"
    prometheus_url: str | None = None
    """Judge fleet health from this Prometheus (scraping the fleet) instead of its /metrics."""
    database_url: str | None = None
    """The audit store: a SQLAlchemy URL; by default `changegate.db` in the data directory."""
    policy_file: Path | None = None
    """The policy YAML; by default the documented policy shipped with changegate."""
    escalation_webhook: str | None = None
    """Where to POST a notice when a change nears its approval deadline without a quorum."""
    search_attributes: bool = True
    """Tag changes with the Change* search attributes (the namespace must have them)."""

    def store_url(self) -> str:
        """The audit store's URL."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'changegate.db').resolve()}"

    def workflow_url(self, workflow_id: str) -> str:
        """The Temporal web UI page of one change."""
        return f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"
