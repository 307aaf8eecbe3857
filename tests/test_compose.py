"""Checks of the container deployment: `docker-compose.yml`, the `Dockerfile` and `deploy/`.

The compose file is validated by the real `docker-compose config` (no Docker engine needed)
and its resolved form is checked for what changegate relies on: the services, the worker's
settings, loopback-only ports, the UI's write actions, the search attributes and the start-up
order. Without the `docker-compose` binary these tests skip, except under CI=true, where a
missing binary is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import changegate.workflows
from changegate.observability import traces_endpoint
from changegate.policy import load_policy
from changegate.runtime.devserver import DYNAMIC_CONFIG
from changegate.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCRIPTS = ROOT / "deploy" / "scripts"

# Every attribute the workflow writes must be registered by the compose stack.
SEARCH_ATTRIBUTES = [key.name for key in changegate.workflows.SEARCH_ATTRIBUTES]
WORKER_ENV = {
    "CHANGEGATE_TEMPORAL_ADDRESS": "temporal:7233",
    "CHANGEGATE_NAMESPACE": "default",
    "CHANGEGATE_TASK_QUEUE": "changegate",
    "CHANGEGATE_FLEET_URL": "http://fleet:8710",
}
# Variables the compose file reads; cleared so the checks see the file's own defaults.
OVERRIDES = [
    "TEMPORAL_VERSION",
    "TEMPORAL_UI_VERSION",
    "POSTGRESQL_VERSION",
    "POSTGRES_PASSWORD",
    "CHANGEGATE_IMAGE_TAG",
    "CHANGEGATE_OTLP_ENDPOINT",
    "CHANGEGATE_API_PORT",
    "CHANGEGATE_MCP_PORT",
    "TEMPORAL_CORS_ORIGINS",
    "TEMPORAL_NAMESPACE_RETENTION",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
]


def _compose_binary() -> str:
    found = shutil.which("docker-compose")
    if found is not None:
        return found
    reason = "the docker-compose binary is not installed (Debian: apt-get install docker-compose)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must validate docker-compose.yml")
    pytest.skip(reason)


# The file refuses to start without a signing key; the tests give it one.
SIGNING_KEY = {"CHANGEGATE_SIGNING_KEY": "0123456789abcdef" * 4}


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env = {**SIGNING_KEY, **(env or {})}
    return subprocess.run(
        [_compose_binary(), "-f", str(COMPOSE_FILE), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        timeout=120,
    )


def _resolved(env: dict[str, str] | None = None) -> dict[str, Any]:
    result = _compose("config", env=env)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    """The services of `docker-compose config`, interpolated with the file's defaults."""
    found: dict[str, dict[str, Any]] = _resolved()["services"]
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each publication, short or long syntax."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append(
                (
                    str(port.get("host_ip", "")),
                    str(port.get("published", "")),
                    str(port["target"]),
                )
            )
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))
    return out


def _conditions(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "")
    return {name: str(spec.get("condition", "")) for name, spec in depends.items()}


def _words(value: object) -> list[str]:
    return [str(part) for part in value] if isinstance(value, list) else str(value).split()


def test_compose_file_is_valid() -> None:
    result = _compose("config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_compose_refuses_to_start_without_a_signing_key() -> None:
    result = _compose("config", "--quiet", env={"CHANGEGATE_SIGNING_KEY": ""})
    assert result.returncode != 0
    assert "CHANGEGATE_SIGNING_KEY" in result.stderr


def test_api_and_workers_share_one_store_and_one_key(services: dict[str, dict[str, Any]]) -> None:
    api, worker = services["changegate-api"], services["changegate-worker"]
    assert _words(api["command"])[0] == "api"
    api_env, worker_env = _environment(api), _environment(worker)
    for key in ("CHANGEGATE_SIGNING_KEY", "CHANGEGATE_DATABASE_URL", "CHANGEGATE_TASK_QUEUE"):
        assert api_env[key] == worker_env[key], key
    assert api_env["CHANGEGATE_SIGNING_KEY"] == SIGNING_KEY["CHANGEGATE_SIGNING_KEY"]
    assert api_env["CHANGEGATE_DATABASE_URL"].startswith("postgresql://")


def test_the_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "postgresql",
        "temporal",
        "temporal-ui",
        "changegate-search-attributes",
        "changegate-worker",
        "changegate-api",
        "changegate-mcp",
        "fleet",
    }
    assert expected <= set(services)
    assert services["postgresql"]["image"].startswith("postgres:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_temporal_runs_on_postgresql(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    env = _environment(temporal)
    assert temporal["image"].startswith("temporalio/server:")
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["BIND_ON_IP"] == "0.0.0.0"
    assert _conditions(temporal)["postgresql"] == "service_healthy"
    # The server image does not create its schema: an admin-tools service must, first.
    schema_steps = [
        name
        for name, condition in _conditions(temporal).items()
        if condition == "service_completed_successfully"
        and services[name]["image"].startswith("temporalio/admin-tools:")
    ]
    assert len(schema_steps) == 1
    schema = services[schema_steps[0]]
    assert _environment(schema)["SQL_PLUGIN"] == "postgres12"
    assert _environment(schema)["SQL_HOST"] == "postgresql"


def test_admin_tools_match_the_server_version(services: dict[str, dict[str, Any]]) -> None:
    server_tag = services["temporal"]["image"].split(":", 1)[1]
    admin = [s["image"] for s in services.values() if "temporalio/admin-tools" in s["image"]]
    assert admin
    assert all(image == f"temporalio/admin-tools:{server_tag}" for image in admin)

    pinned = _resolved({"TEMPORAL_VERSION": "9.9.9"})["services"]
    assert pinned["temporal"]["image"] == "temporalio/server:9.9.9"
    assert all(
        s["image"] == "temporalio/admin-tools:9.9.9"
        for s in pinned.values()
        if "temporalio/admin-tools" in s["image"]
    )


def test_third_party_images_are_pinned_with_overridable_defaults() -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for name, service in raw["services"].items():
        image = service.get("image", "")
        if image.startswith(("postgres:", "temporalio/")):
            match = re.fullmatch(r"[\w./-]+:\$\{([A-Z_]+):-([\w.-]+)\}", image)
            assert match is not None, f"{name}: {image!r} is not pinned by a variable"
            assert match.group(2) != "latest", f"{name} defaults to latest"


def test_worker_runs_changegate_worker(services: dict[str, dict[str, Any]]) -> None:
    worker = services["changegate-worker"]
    assert _words(worker["command"]) == ["worker"]
    assert "build" in worker
    env = _environment(worker)
    for key, value in WORKER_ENV.items():
        assert env.get(key) == value, key


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["changegate-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_fleet_serves_on_loopback_8710(services: dict[str, dict[str, Any]]) -> None:
    fleet = services["fleet"]
    assert _words(fleet["command"]) == ["fleet", "--host", "0.0.0.0", "--port", "8710"]
    assert _ports(fleet) == [("127.0.0.1", "8710", "8710")]
    assert fleet["image"] == services["changegate-worker"]["image"]
    assert "healthcheck" in fleet


def test_every_published_port_binds_loopback(services: dict[str, dict[str, Any]]) -> None:
    published = {name: _ports(s) for name, s in services.items() if s.get("ports")}
    assert published, "nothing is published"
    for name, ports in published.items():
        for host_ip, _, _ in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'every address'}"
    assert _ports(services["temporal"]) == [("127.0.0.1", "7233", "7233")]
    assert _ports(services["temporal-ui"]) == [("127.0.0.1", "8080", "8080")]
    assert not services["postgresql"].get("ports")


def test_ui_allows_write_actions(services: dict[str, dict[str, Any]]) -> None:
    env = _environment(services["temporal-ui"])
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["TEMPORAL_CORS_ORIGINS"]
    assert env["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "false"
    for action in ("SIGNAL", "CANCEL", "TERMINATE"):
        assert env[f"TEMPORAL_WORKFLOW_{action}_DISABLED"] == "false", action
    disabled = [k for k, v in env.items() if k.endswith("_DISABLED") and v.lower() == "true"]
    assert disabled == []


def test_search_attribute_service_registers_every_attribute(
    services: dict[str, dict[str, Any]],
) -> None:
    service = services["changegate-search-attributes"]
    assert service["image"].startswith("temporalio/admin-tools:")
    assert _environment(service)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert _environment(service)["NAMESPACE"] == "default"
    command = _words(service.get("entrypoint", [])) + _words(service["command"])
    count = len(SEARCH_ATTRIBUTES)
    assert command[-count:] == SEARCH_ATTRIBUTES
    script = SCRIPTS / Path(command[-count - 1]).name
    text = script.read_text(encoding="utf-8")
    assert "temporal operator search-attribute create" in text
    assert "--type Keyword" in text
    assert '--address "$TEMPORAL_ADDRESS"' in text
    assert '--namespace "$NAMESPACE"' in text


def test_start_up_order(services: dict[str, dict[str, Any]]) -> None:
    worker = _conditions(services["changegate-worker"])
    assert worker["changegate-search-attributes"] == "service_completed_successfully"
    assert worker["temporal"] == "service_healthy"
    assert worker["fleet"] == "service_healthy"
    assert _conditions(services["temporal-ui"])["temporal"] == "service_healthy"
    attributes = _conditions(services["changegate-search-attributes"])
    namespace = [n for n, c in attributes.items() if c == "service_completed_successfully"]
    assert namespace, "search attributes need the namespace to exist first"
    assert _conditions(services[namespace[0]])["temporal"] == "service_healthy"
    for name, service in services.items():
        for target, condition in _conditions(service).items():
            assert condition, f"{name} -> {target} has no condition"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_mounted_deploy_files_exist(services: dict[str, dict[str, Any]]) -> None:
    mounts = 0
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":", 1)[0]
            if source.startswith("/"):
                assert Path(source).is_dir(), f"{name} mounts missing {source}"
                assert Path(source).is_relative_to(ROOT / "deploy"), source
                mounts += 1
    assert mounts >= 2
    dynamic = _environment(services["temporal"])["DYNAMIC_CONFIG_FILE_PATH"]
    assert (ROOT / "deploy" / "dynamicconfig" / Path(dynamic).name).is_file()


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.sh")))
def test_deploy_scripts_parse(script: str) -> None:
    result = subprocess.run(
        ["sh", "-n", str(SCRIPTS / script)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_dockerfile_entrypoint_and_user() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    entrypoints = [line.split(None, 1)[1] for line in lines if line.startswith("ENTRYPOINT ")]
    assert entrypoints and json.loads(entrypoints[-1]) == ["changegate"]
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    installs = [line for line in lines if "pip install" in line]
    assert any(re.search(r"pip install \.(\s|$)", line) for line in installs)
    assert not any(" -e " in line or "[dev]" in line for line in installs)


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", ".git", ".changegate", ".pytest_cache", ".mypy_cache", "tests"):
        assert entry in entries, entry
    for needed in ("src", "pyproject.toml", "README.md"):
        assert needed not in entries, needed


# The changegate processes (the fleet is the demo target, not one of them).
PROCESSES = ("changegate-api", "changegate-worker", "changegate-mcp")


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (host path, read-only) of each bind mount."""
    out = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            out[str(volume["target"])] = (str(volume["source"]), bool(volume.get("read_only")))
            continue
        source, target, *mode = str(volume).split(":")
        out[target] = (source, mode == ["ro"])
    return out


def test_every_process_shares_the_store_the_key_and_the_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    envs = {name: _environment(services[name]) for name in PROCESSES}
    for key in ("CHANGEGATE_DATABASE_URL", "CHANGEGATE_SIGNING_KEY", "CHANGEGATE_POLICY_FILE"):
        assert len({env[key] for env in envs.values()}) == 1, key
    assert envs["changegate-worker"]["CHANGEGATE_DATABASE_URL"].startswith("postgresql://")
    policy = Path(envs["changegate-worker"]["CHANGEGATE_POLICY_FILE"])
    for name in PROCESSES:
        source, read_only = _mounts(services[name])[str(policy.parent)]
        assert read_only, f"{name} may write the policy"
        assert Path(source) == ROOT / "deploy" / "policy", name
    # The mounted file is a policy changegate accepts.
    assert load_policy(ROOT / "deploy" / "policy" / policy.name).agents


def test_mcp_serves_http_on_loopback_as_a_client_of_the_api(
    services: dict[str, dict[str, Any]],
) -> None:
    mcp = services["changegate-mcp"]
    assert _words(mcp["command"])[:3] == ["mcp", "--transport", "http"]
    assert _ports(mcp) == [("127.0.0.1", "8765", "8765")]
    assert _environment(mcp)["CHANGEGATE_API_URL"] == "http://changegate-api:8720"
    assert _conditions(mcp)["changegate-api"] == "service_healthy"
    assert _ports(services["changegate-api"]) == [("127.0.0.1", "8720", "8720")]


def _settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process of `service` would read from its environment."""
    for key in [k for k in os.environ if k.startswith(("CHANGEGATE_", "OTEL_"))]:
        monkeypatch.delenv(key)
    for key, value in _environment(service).items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_workers_serve_metrics_inside_the_network_only(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = services["changegate-worker"]
    settings = _settings(worker, monkeypatch)
    assert settings.worker_metrics_address == "0.0.0.0:9464"
    assert [str(port) for port in worker.get("expose") or []] == ["9464"]
    assert not worker.get("ports")  # replicas would collide on a published port
    # The API serves its own metrics at /metrics; the API process starts no worker runtime.
    api = _settings(services["changegate-api"], monkeypatch)
    assert api.api_metrics and not api.worker_metrics_address


def test_tracing_is_off_unless_an_otlp_endpoint_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    default = _resolved()["services"]
    for name in PROCESSES:
        assert traces_endpoint(_settings(default[name], monkeypatch)) is None, name
    collector = "http://otel-collector.example.com:4318"
    traced = _resolved({"CHANGEGATE_OTLP_ENDPOINT": collector})["services"]
    for name in PROCESSES:
        settings = _settings(traced[name], monkeypatch)
        assert traces_endpoint(settings) == f"{collector}/v1/traces", name


def test_compose_temporal_has_the_dev_servers_tuning() -> None:
    """The compose stack's Temporal gets the dynamic config `changegate up` gives its own."""
    path = ROOT / "deploy" / "dynamicconfig" / "development-sql.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in DYNAMIC_CONFIG.items():
        assert key in config, f"{path.name} lacks {key}"
        assert config[key] == [{"value": json.loads(value), "constraints": {}}], key
