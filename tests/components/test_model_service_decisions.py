"""ModelService's two decisions, made once: which tracks run (model_tracks.py) and where their weights come from
(model_weights.py). Every object that depends on one reads it from there, so they all agree."""

from __future__ import annotations

from typing import Any, cast

import pytest

from components import ModelService
from components.model_tracks import ModelScope, TrackName, model_tracks
from components.model_weights import WeightsAccess, weights_access
from tests.components.conftest import cluster_config, model_config
from tests.components.test_model_service import GATEWAY, IMAGE, MODEL, at_weight, service_args

CANARY_IMAGE = IMAGE.replace("a" * 64, "b" * 64)
KEDA = {"autoscaling": {"prometheus_query": "sum(queue)", "prometheus_threshold": "5"}}


def scope(model: dict[str, Any], cluster: dict[str, Any] | None = None, low: int = 3, high: int = 6) -> ModelScope:
    """A model's scope as ModelService makes it (no parent: nothing here creates resources)."""
    return ModelScope(
        name="chat",
        model=model_config(**{**MODEL, **model}),
        cluster=cluster_config(**(cluster or {})),
        environment="prod",
        cost_owner="ml",
        min_replicas=low,
        max_replicas=high,
        parent=cast(Any, None),
    )


@pytest.mark.parametrize(
    "model, access",
    [
        ({}, WeightsAccess.COPY),
        ({"artifact_access": "mount"}, WeightsAccess.MOUNT),
        ({"artifact_uri": None}, WeightsAccess.NONE),
    ],
)
def test_artifact_access_is_read_once_from_the_model(model, access):
    assert weights_access(model_config(**{**MODEL, **model})) is access


def test_a_model_without_a_canary_runs_one_track_its_service_serves_whole():
    [stable] = model_tracks(scope({}), IMAGE, None)
    assert (stable.track, stable.name, stable.service, stable.weight) == (TrackName.STABLE, "chat", "chat", 100)
    assert (stable.version, stable.image, stable.prefix) == ("2.4.0", IMAGE, "chat/2.4.0")
    assert stable.replicas is None and stable.spec_replicas is None  # its autoscaler's


@pytest.mark.parametrize(
    "model, cluster, replicas, written",
    [
        (at_weight(10), GATEWAY, 2, 2),  # through a gateway, never fewer than 2 (a drain would empty its share)
        (at_weight(50), {}, 3, 3),  # by replica ratio: half of the stable track's 6
        ({**at_weight(10), **KEDA}, GATEWAY, 2, None),  # KEDA holds them (the canary's own ScaledObject)
        (at_weight(0), GATEWAY, 0, 0),  # the roll-back stops its pods
    ],
)
def test_the_canary_track_is_decided_with_its_replicas_and_their_owner(model, cluster, replicas, written):
    stable, canary = model_tracks(scope(model, cluster), IMAGE, CANARY_IMAGE)
    weight = model["canary"]["weight"]
    assert (stable.service, stable.weight) == ("chat-stable", 100 - weight)
    assert (canary.track, canary.name, canary.service, canary.weight) == (
        "canary",
        "chat-canary",
        "chat-canary",
        weight,
    )
    assert (canary.version, canary.image, canary.prefix) == ("2.5.0", CANARY_IMAGE, "chat/2.5.0")
    assert (canary.replicas, canary.spec_replicas) == (replicas, written)


def test_a_canary_without_its_image_is_refused_before_anything_is_made():
    with pytest.raises(ValueError, match=r"ModelService chat: the model has a canary \(2\.5\.0\) but no canary_image"):
        model_tracks(scope(at_weight(10)), IMAGE, None)


@pytest.mark.parametrize("access", ["copy", "mount", "none"])
def test_every_object_agrees_on_where_the_weights_come_from(build, access):
    """Per track: the init container, the /models volume, the disk the pod asks for, what the pods wait for, the
    rollout's deadline and the cold start stated for scale-to-zero all follow the one decision."""
    model = {**at_weight(10), **KEDA} | ({"artifact_uri": None} if access == "none" else {"artifact_access": access})
    built = build(
        lambda: ModelService(
            "chat", service_args(model=model, cluster=GATEWAY, canary_image=CANARY_IMAGE, min_replicas=0)
        )
    )
    replica = 300 + 600 + (300 if access == "copy" else 0) + 900
    for deployment, version in (("chat-deployment", "2.4.0"), ("chat-canary-deployment", "2.5.0")):
        inputs = built.inputs(deployment)
        pod = inputs["spec"]["template"]["spec"]
        model_volume = next(v for v in pod["volumes"] if v["name"] == "model")
        fetch = [c["command"][-2] for c in pod.get("initContainers", [])]
        needs = {d.rsplit("::", 1)[-1] for d in built.named(deployment)["dependencies"]}
        storage = pod["containers"][0]["resources"]["requests"]["ephemeral-storage"]
        if access == "mount":
            assert model_volume["persistentVolumeClaim"]["claimName"] == f"chat-weights-{version}"
            assert fetch == [] and storage == "2Gi"
            assert needs >= {f"chat-artifact-read-{version}", f"chat-weights-{version}-pvc"}
        else:
            assert "emptyDir" in model_volume
            assert fetch == ([f"s3://acme-models/chat/{version}"] if access == "copy" else [])
            assert storage == "52Gi"  # the scratch default (50Gi) beside the /tmp cache
            assert needs >= ({f"chat-artifact-read-{version}"} if access == "copy" else set())
            assert not any(n.startswith("chat-weights-") for n in needs)
        assert inputs["spec"]["progressDeadlineSeconds"] == replica + 60
    assert bool(built.of_type("iam/role:Role")) is (access != "none")
    assert bool(built.of_type("PersistentVolume")) is (access == "mount")
    cold_start = built.inputs("chat-scaler")["metadata"]["annotations"]["modelops/cold-start-seconds"]
    assert cold_start == str(replica)
