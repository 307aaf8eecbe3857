"""The kubernetes kind's contract harness: the loopback API server replaying recorded objects."""

from __future__ import annotations

import copy
from contextlib import ExitStack
from pathlib import Path

import pytest
from tests.kinds.contract import Harness, register
from tests.kinds.kubernetes.fake_api import kubeconfig, recorded, serving

from changegate.models import Target
from changegate.settings import Settings

SELECTOR = {"context": "prod-eu", "namespace": "shop", "kind": "deployment", "labels": "app=web"}


@register("kubernetes")
def kubernetes_harness(request: pytest.FixtureRequest) -> Harness:
    """Deployments `web` and `web-admin` (label `app=web`, 3 replicas each) in namespace `shop`."""
    tmp: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    stack = ExitStack()
    api = stack.enter_context(serving())
    api.add(recorded("deployment-web"))
    admin = copy.deepcopy(recorded("deployment-web"))
    admin["metadata"].update(name="web-admin", labels={"app": "web", "tier": "back"})
    admin["metadata"]["resourceVersion"] = "48300"
    api.add(admin)
    api.add(recorded("configmap-web-config"))
    # The kind builds its provider from its own settings, read from the environment.
    path = kubeconfig(tmp / "kubeconfig", api.url)
    monkeypatch.setenv("CHANGEGATE_KUBERNETES_KUBECONFIG", str(path))
    monkeypatch.setenv("CHANGEGATE_KUBERNETES_ROLLOUT_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("CHANGEGATE_KUBERNETES_POLL_INTERVAL_SECONDS", "0")
    return Harness(
        settings=Settings(data_dir=tmp),
        target=Target(kind="kubernetes", selector=SELECTOR),
        operation="scale",
        parameters={"replicas": 5},
        spellings=[
            (
                Target(kind="kubernetes", selector={**SELECTOR, "instances": "web-admin,web"}),
                Target(kind="kubernetes", selector={**SELECTOR, "instances": "web,web-admin"}),
            )
        ],
        bad_selectors=[
            ({**SELECTOR, "namespace": "Shop"}, "target.selector.namespace"),
            ({**SELECTOR, "kind": "daemonset"}, "target.selector.kind"),
            ({**SELECTOR, "labels": "tier=front,app=web"}, "target.selector.labels"),
            ({**SELECTOR, "cluster": "eu"}, "target.selector.cluster"),
            ({**SELECTOR, "name": "web"}, "target.selector.name"),
        ],
        bad_parameters=[
            ({"replicas": -1}, "change.parameters.replicas"),
            ({"replicas": 3.0}, "change.parameters.replicas"),
            ({"replicas": "5"}, "change.parameters.replicas"),
            ({"replicas": 1001}, "change.parameters.replicas"),
            ({}, "change.parameters.replicas"),
        ],
        cleanup=[stack.close],
    )
