"""The `kubernetes` kind against a loopback API server replaying recorded responses.

No API server can run on these machines, so `tests/kinds/kubernetes/fake_api.py` serves the
recorded apps/v1 objects, their status transitions during a rollout, and the API's 409, 404
and 403 Status answers; the provider talks to it through lightkube exactly as to a cluster.
The last test runs against a real cluster when CHANGEGATE_TEST_KUBECONFIG is set.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from changegate.activities.rollout import RolloutActivities
from changegate.errors import InvalidChange, InvalidTarget, TargetNotFound
from changegate.kinds.base import TargetKind
from changegate.kinds.kubernetes import (
    KIND,
    AccessDenied,
    Clusters,
    KubernetesProvider,
    RolloutFailed,
    WorkloadConflict,
    quantities,
)
from changegate.models import AgentIdentity, ChangeRequest, Target, UnitChange
from changegate.models.steps import ApprovalProof, UnitStepInput
from changegate.providers import ProviderRegistry
from tests.kinds.kubernetes.fake_api import FakeApi, kubeconfig, recorded, serving

WEB = "/apis/apps/v1/namespaces/shop/deployments/web"
DB = "/apis/apps/v1/namespaces/shop/statefulsets/db"
WEB_CONFIG = "/api/v1/namespaces/shop/configmaps/web-config"
NEW_IMAGE = "registry.example.com/shop/web:1.5.0"


def _target(**selector: str) -> Target:
    base = {"context": "prod-eu", "namespace": "shop", "kind": "deployment", "name": "web"}
    base.update(selector)
    return Target(kind="kubernetes", selector={k: v for k, v in base.items() if v != "-"})


def _request(target: Target, operation: str, parameters: dict[str, JsonValue]) -> ChangeRequest:
    return ChangeRequest(
        agent=AgentIdentity(agent_id="deploy-bot"),
        intent="roll out the reviewed change to the web tier",
        target=target,
        change={"operation": operation, "parameters": parameters},
    )


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with serving() as fake:
        fake.add(recorded("deployment-web"))
        admin = copy.deepcopy(recorded("deployment-web"))
        admin["metadata"].update(name="web-admin", labels={"app": "web", "tier": "back"})
        admin["metadata"]["resourceVersion"] = "48300"
        fake.add(admin)
        fake.add(recorded("configmap-web-config"))
        fake.add(recorded("statefulset-db"))
        yield fake


@pytest.fixture
async def provider(api: FakeApi, tmp_path: Path) -> AsyncIterator[KubernetesProvider]:
    path = kubeconfig(tmp_path / "kubeconfig", api.url, contexts=("prod-eu", "prod-us"))
    made = KubernetesProvider(
        Clusters(path), rollout_timeout_seconds=0.5, poll_interval_seconds=0.0
    )
    yield made
    await made.aclose()


# ---- resolve ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({"namespace": "Shop"}, "namespace"),
        ({"namespace": "shop\n"}, "namespace"),
        ({"kind": "Deployment"}, "kind"),
        ({"kind": "daemonset"}, "kind"),
        ({"context": "prod eu"}, "context"),
        ({"name": "Web"}, "name"),
        ({"name": "web_1"}, "name"),
        ({"name": "-", "labels": "-"}, "labels"),
        ({"labels": "app=web"}, "name"),
        ({"name": "-", "labels": "tier=front,app=web"}, "labels"),
        ({"name": "-", "labels": "app==web"}, "labels"),
        ({"name": "-", "labels": "app=web, tier=front"}, "labels"),
        ({"name": "-", "labels": "app=-web"}, "labels"),
        ({"name": "-", "labels": "app=web,app=api"}, "labels"),
        ({"name": "-", "labels": "app in (b,a)"}, "labels"),
        ({"name": "-", "labels": "app in ()"}, "labels"),
        ({"instances": "web"}, "instances"),
        ({"cluster": "eu"}, "cluster"),
    ],
)
def test_resolve_refuses_what_kubernetes_would_not_name(
    selector: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidTarget) as refused:
        KubernetesProvider(Clusters(None)).resolve(_target(**selector))
    assert refused.value.field == f"target.selector.{field}"


def test_resolve_says_the_canonical_label_selector() -> None:
    with pytest.raises(InvalidTarget) as refused:
        KubernetesProvider(Clusters(None)).resolve(_target(name="-", labels="tier=front,app=web"))
    assert "'app=web,tier=front'" in refused.value.would_pass


def test_resolve_keeps_canonical_selectors() -> None:
    provider = KubernetesProvider(Clusters(None))
    for labels in ("app=web,tier=front", "app in (api,web),!canary", "app,tier notin (back)"):
        target = provider.resolve(_target(name="-", labels=labels))
        assert target.selector["labels"] == labels
    target = provider.resolve(_target(name="-", labels="app=web", instances="web-admin,web"))
    assert target.selector["instances"] == "web,web-admin"
    assert (
        target.label() == "kubernetes:context=prod-eu,kind=deployment,labels=app=web,namespace=shop"
    )


# ---- observe and plan ---------------------------------------------------------------------


async def test_observe_lists_workloads_by_label_with_their_state(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    seen = await provider.observe(_target(name="-", labels="app=web"))
    assert [u.unit_id for u in seen.units] == ["web", "web-admin"]
    web = seen.units[0]
    assert web.healthy is True
    assert web.state["replicas"] == 3
    assert web.state["containers.web.image"] == "registry.example.com/shop/web:1.4.2"
    assert web.state["containers.web.env.LOG_LEVEL"] == "info"
    assert isinstance(web.state["containers.web.env.DB_PASSWORD"], dict)
    assert web.state["containers.web.resources.requests.cpu"] == "250m"
    assert web.state["configmaps.web-config.CACHE_TTL"] == "30"
    assert web.state["config_restart"] is None
    listed = next(r for r in api.requests if r["path"].endswith("/deployments"))
    assert listed["query"]["labelSelector"] == ["app=web"]
    assert listed["headers"]["Authorization"] == "Bearer recorded-token"

    narrowed = await provider.observe(_target(name="-", labels="app=web,tier=front"))
    assert [u.unit_id for u in narrowed.units] == ["web"]


async def test_observe_a_statefulset_through_another_context(provider: KubernetesProvider) -> None:
    seen = await provider.observe(_target(context="prod-us", kind="statefulset", name="db"))
    assert seen.units[0].state["containers.postgres.resources.limits.memory"] == "4Gi"
    assert seen.facts == {"context": "prod-us", "namespace": "shop"}


async def test_observe_missing_instances_and_objects(provider: KubernetesProvider) -> None:
    with pytest.raises(TargetNotFound, match="web-blue"):
        await provider.observe(_target(name="-", labels="app=web", instances="web-blue"))
    with pytest.raises(TargetNotFound, match="not found"):
        await provider.observe(_target(name="checkout"))


async def test_plan_sets_before_and_after_of_the_operations_fields(
    provider: KubernetesProvider,
) -> None:
    target = _target(name="-", labels="app=web")
    request = _request(target, "set_image", {"container": "web", "image": NEW_IMAGE})
    plan = await provider.plan(request, await provider.observe(target))
    first = plan.units()[0]
    assert first.before == {"containers.web.image": "registry.example.com/shop/web:1.4.2"}
    assert first.after == {"containers.web.image": NEW_IMAGE}
    assert [u.phase for u in plan.units()] == ["canary", "wave-1"]


@pytest.mark.parametrize(
    ("operation", "parameters", "field"),
    [
        ("set_image", {"container": "web", "image": "registry.example.com/shop/web"}, "image"),
        ("scale", {"replicas": -1}, "replicas"),
        ("scale", {"replicas": 3.0}, "replicas"),
        ("scale", {"replicas": float("nan")}, "replicas"),
        ("scale", {"replicas": 2, "surge": 1}, "surge"),
        ("set_resources", {"container": "web", "requests": {"cpu": "0.5"}}, "cpu"),
        (
            "set_resources",
            {"container": "web", "requests": {"memory": "1G"}, "limits": {"memory": "512Mi"}},
            "change.parameters",
        ),
        ("set_env", {"container": "web", "env": {"1BAD": "x"}}, "env"),
        ("restart", {}, "change.operation"),
    ],
)
async def test_plan_refuses_parameters_outside_their_schema(
    provider: KubernetesProvider, operation: str, parameters: dict[str, JsonValue], field: str
) -> None:
    target = _target()
    observation = await provider.observe(target)
    with pytest.raises(InvalidChange) as refused:
        await provider.plan(_request(target, operation, parameters), observation)
    assert field in refused.value.field or field in refused.value.reason


async def test_plan_refuses_what_the_workload_cannot_take(provider: KubernetesProvider) -> None:
    target = _target()
    observation = await provider.observe(target)
    cases: list[tuple[str, dict[str, JsonValue], str]] = [
        ("set_image", {"container": "sidecar", "image": NEW_IMAGE}, "no container 'sidecar'"),
        ("set_env", {"container": "web", "env": {"DB_PASSWORD": "x"}}, "valueFrom"),
        ("set_config_key", {"configmap": "other", "key": "a", "value": "b"}, "does not use"),
    ]
    for operation, parameters, text in cases:
        with pytest.raises(Exception, match=text):
            await provider.plan(_request(target, operation, parameters), observation)


def test_quantities_only_in_the_form_the_server_prints() -> None:
    pairs = {
        "500m": "500m",
        "0.5": "500m",
        "1000m": "1",
        "2000": "2k",
        "1536Mi": "1536Mi",
        "1.5Gi": "1536Mi",
        "1024Mi": "1Gi",
        "512": "512",
        "1e3": "1e3",
        "0.1m": "1m",
        "0": "0",
    }
    for given, printed in pairs.items():
        assert quantities.canonical(given) == printed, given
    assert quantities.canonical("1 Gi") is None
    assert quantities.canonical("lots") is None


def test_the_kind_describes_itself() -> None:
    assert isinstance(KIND, TargetKind)
    assert KIND.operations["set_image"].operation_class == "deploy"
    assert KIND.operations["scale"].operation_class == "scale"
    assert all("{{unit}}" in m.query for m in KIND.metrics.values())


# ---- apply, revert, rollout ---------------------------------------------------------------


async def test_apply_patches_then_waits_for_the_rollout_to_complete(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    api.queue_rollout(WEB, recorded("deployment-web-rollout")["statuses"])
    unit = await _plan_one(provider, "set_image", {"container": "web", "image": NEW_IMAGE})
    await provider.apply(_target(), unit, idempotency_key="c1:web:apply")

    [patch] = api.patches(WEB)
    assert patch["headers"]["Content-Type"] == "application/strategic-merge-patch+json"
    assert patch["query"]["fieldManager"] == ["changegate"]
    assert patch["body"] == {
        "metadata": {"resourceVersion": "48211"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": NEW_IMAGE}]}}},
    }
    # Every recorded status was walked: the apply returned only once the rollout completed.
    assert api.rollouts[WEB] == []
    state = await provider.read_unit(_target(), "web")
    assert state["containers.web.image"] == NEW_IMAGE

    await provider.apply(_target(), unit, idempotency_key="c1:web:apply")
    assert len(api.patches(WEB)) == 1


async def test_a_statefulset_rollout_waits_for_the_update_revision(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    api.queue_rollout(DB, recorded("statefulset-db-rollout")["statuses"])
    target = _target(kind="statefulset", name="db")
    request = _request(
        target, "set_resources", {"container": "postgres", "limits": {"memory": "6Gi"}}
    )
    plan = await provider.plan(request, await provider.observe(target))
    await provider.apply(target, plan.units()[0], idempotency_key="c2:db:apply")
    [patch] = api.patches(DB)
    containers = patch["body"]["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "postgres", "resources": {"limits": {"memory": "6Gi"}}}]
    assert api.rollouts[DB] == []


async def test_revert_is_three_way(provider: KubernetesProvider, api: FakeApi) -> None:
    rollout = RolloutActivities(ProviderRegistry([provider]))
    unit = await _plan_one(provider, "scale", {"replicas": 5})

    def step(key: str) -> UnitStepInput:
        return UnitStepInput(
            change_id=key, target=_target(), unit=unit, approval=ApprovalProof(approved_by=["a"])
        )

    # At `before`: nothing to revert.
    skipped = await rollout.revert_unit(step("c3"))
    assert skipped.skipped and api.patches(WEB) == []

    applied = await rollout.apply_unit(step("c3"))
    assert applied.ok and api.objects[WEB]["spec"]["replicas"] == 5

    # Someone else scales it to 7: the revert leaves it as found.
    api.objects[WEB]["spec"]["replicas"] = 7
    conflict = await rollout.revert_unit(step("c3"))
    assert conflict.conflict and len(api.patches(WEB)) == 1
    with pytest.raises(WorkloadConflict):
        await provider.revert(_target(), unit, idempotency_key="c3:web:revert")

    # At `after`: reverted to `before`.
    api.objects[WEB]["spec"]["replicas"] = 5
    reverted = await rollout.revert_unit(step("c3"))
    assert reverted.ok and not reverted.skipped
    assert api.objects[WEB]["spec"]["replicas"] == 3


async def test_set_env_removes_a_variable_it_added_on_revert(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    unit = await _plan_one(provider, "set_env", {"container": "web", "env": {"FEATURE_X": "on"}})
    assert unit.before == {"containers.web.env.FEATURE_X": None}
    await provider.apply(_target(), unit, idempotency_key="c4:web:apply")
    assert (await provider.read_unit(_target(), "web"))["containers.web.env.FEATURE_X"] == "on"
    await provider.revert(_target(), unit, idempotency_key="c4:web:revert")
    body = api.patches(WEB)[-1]["body"]
    assert body["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "FEATURE_X", "$patch": "delete"}
    ]
    assert "containers.web.env.FEATURE_X" not in await provider.read_unit(_target(), "web")


async def test_set_config_key_patches_the_configmap_then_restarts(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    unit = await _plan_one(
        provider, "set_config_key", {"configmap": "web-config", "key": "CACHE_TTL", "value": "60"}
    )
    await provider.apply(_target(), unit, idempotency_key="c5:web:apply")
    [cm_patch] = api.patches(WEB_CONFIG)
    assert cm_patch["body"] == {
        "data": {"CACHE_TTL": "60"},
        "metadata": {"resourceVersion": "47790"},
    }
    [restart] = api.patches(WEB)
    annotations = restart["body"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["changegate.io/config-restart"] == unit.after["config_restart"]
    assert api.requests.index(cm_patch) < api.requests.index(restart)

    await provider.revert(_target(), unit, idempotency_key="c5:web:revert")
    state = await provider.read_unit(_target(), "web")
    assert state["configmaps.web-config.CACHE_TTL"] == "30"
    assert state["config_restart"] is None


# ---- errors -------------------------------------------------------------------------------


async def test_api_errors_map_to_typed_errors(provider: KubernetesProvider, api: FakeApi) -> None:
    unit = await _plan_one(provider, "scale", {"replicas": 4})
    api.fail("PATCH", WEB, recorded("status-409"))
    with pytest.raises(WorkloadConflict, match="the object has been modified"):
        await provider.apply(_target(), unit, idempotency_key="c6:web:apply")
    api.fail("PATCH", WEB, recorded("status-403"))
    with pytest.raises(AccessDenied, match="cannot patch resource"):
        await provider.apply(_target(), unit, idempotency_key="c6:web:apply")
    api.fail("GET", WEB, recorded("status-404"))
    with pytest.raises(TargetNotFound, match="not found"):
        await provider.read_unit(_target(), "web")
    assert api.objects[WEB]["spec"]["replicas"] == 3


async def test_a_stale_resource_version_is_a_conflict(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    unit = await _plan_one(provider, "scale", {"replicas": 4})
    original = api._get

    def moved_after_read(path: str) -> dict[str, Any]:
        obj = original(path)
        # Someone else writes between changegate's read and its patch.
        api.objects[WEB]["metadata"]["resourceVersion"] = "48999"
        return obj

    api._get = moved_after_read  # type: ignore[method-assign]
    with pytest.raises(WorkloadConflict):
        await provider.apply(_target(), unit, idempotency_key="c7:web:apply")
    assert api.objects[WEB]["spec"]["replicas"] == 3


async def test_a_progress_deadline_is_a_typed_rollout_failure(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    api.queue_rollout(WEB, recorded("deployment-web-deadline")["statuses"])
    unit = await _plan_one(provider, "set_image", {"container": "web", "image": NEW_IMAGE})
    with pytest.raises(RolloutFailed) as failed:
        await provider.apply(_target(), unit, idempotency_key="c8:web:apply")
    assert failed.value.reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in str(failed.value)


async def test_a_rollout_that_never_progresses_times_out(
    provider: KubernetesProvider, api: FakeApi
) -> None:
    api.controller = False
    unit = await _plan_one(provider, "scale", {"replicas": 4})
    with pytest.raises(RolloutFailed) as failed:
        await provider.apply(_target(), unit, idempotency_key="c9:web:apply")
    assert failed.value.reason == "Timeout"


async def _plan_one(
    provider: KubernetesProvider, operation: str, parameters: dict[str, JsonValue]
) -> UnitChange:
    request = _request(_target(), operation, parameters)
    plan = await provider.plan(request, await provider.observe(_target()))
    return plan.units()[0]


# ---- a real cluster -----------------------------------------------------------------------

REAL = os.environ.get("CHANGEGATE_TEST_KUBECONFIG")


@pytest.mark.skipif(
    not REAL,
    reason="set CHANGEGATE_TEST_KUBECONFIG to a kind or k3d cluster's kubeconfig (README: "
    "'Target kinds: kubernetes') to run against a real API server",
)
async def test_against_a_real_cluster() -> None:
    from lightkube import AsyncClient, KubeConfig
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Namespace

    config = KubeConfig.from_file(str(REAL))
    context = os.environ.get("CHANGEGATE_TEST_KUBE_CONTEXT") or config.current_context
    assert context
    namespace = f"changegate-it-{uuid.uuid4().hex[:8]}"
    client = AsyncClient(config=config.get(context_name=context), field_manager="changegate-test")
    await client.create(Namespace.from_dict({"metadata": {"name": namespace}}))
    provider = KubernetesProvider(
        Clusters(Path(str(REAL))), rollout_timeout_seconds=180, poll_interval_seconds=1
    )
    try:
        labels = {"app": "it", "owner": "changegate"}
        await client.create(
            Deployment.from_dict(
                {
                    "metadata": {"name": "it", "labels": labels},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "it"}},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "containers": [
                                    {"name": "pause", "image": "registry.k8s.io/pause:3.10"}
                                ]
                            },
                        },
                    },
                }
            ),
            namespace=namespace,
        )
        target = Target(
            kind="kubernetes",
            selector={
                "context": context,
                "namespace": namespace,
                "kind": "deployment",
                "labels": "app=it,owner=changegate",
            },
        )
        for operation, parameters in (
            ("scale", {"replicas": 2}),
            ("set_env", {"container": "pause", "env": {"CHANGEGATE_IT": "1"}}),
        ):
            observation = await provider.observe(target)
            plan = await provider.plan(_request(target, operation, parameters), observation)
            unit = plan.units()[0]
            await provider.apply(target, unit, idempotency_key=f"it:{operation}:apply")
            assert not [
                k
                for k, v in unit.after.items()
                if (await provider.read_unit(target, "it")).get(k) != v
            ]
            await provider.apply(target, unit, idempotency_key=f"it:{operation}:apply")
            await provider.revert(target, unit, idempotency_key=f"it:{operation}:revert")
            state = await provider.read_unit(target, "it")
            assert {k: state.get(k) for k in unit.before} == unit.before
    finally:
        await provider.aclose()
        await client.delete(Namespace, namespace)
        await client.close()
