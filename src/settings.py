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
    search_attributes: bool = True
    """Tag changes with the Change* search attributes (the namespace must have them)."""

    def workflow_url(self, workflow_id: str) -> str:
        """The Temporal web UI page of one change."""
        return f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow_id}"
