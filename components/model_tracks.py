"""Which model ModelService serves and which tracks it runs, decided once: the model's scope (its name, its
validated config, whose it is, the component its resources hang under) and its tracks (stable, and canary when
configured), each with its name, version, image, replicas and weights prefix. Every Kubernetes object of the
model is built from these."""

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pulumi

from .common import standard_labels
from .config import ClusterConfig, ModelConfig


@dataclass(frozen=True)
class ModelScope:
    """One served model as the parts of ModelService see it."""

    name: str
    """The model's name: its objects', its selector's `app.kubernetes.io/name`."""
    model: ModelConfig
    cluster: ClusterConfig
    environment: str
    cost_owner: str
    min_replicas: int
    """The stable track's lower bound, after the environment's defaults (0: the model sleeps when idle)."""
    max_replicas: int
    parent: pulumi.Resource
    """The ModelService every resource of the model is a child of."""

    def labels(self, version: str | None, component: str) -> dict[str, str]:
        return standard_labels(self.name, self.environment, self.cost_owner, version, component)

    def child(self, **options: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.parent, **options)

    @property
    def scales_with_keda(self) -> bool:
        """The stack's query, or a GPU runtime's engine signal; else an HPA on CPU."""
        return bool(self.model.keda_query(self.name))


class TrackName(StrEnum):
    """A track's `modelops/track` label value."""

    STABLE = "stable"
    CANARY = "canary"


@dataclass(frozen=True)
class Track:
    """One version of the model served beside the other: its Deployment, its share of the traffic, its weights."""

    track: TrackName
    name: str
    """Its Deployment's name (and its budget's and, for the canary, its ScaledObject's)."""
    service: str
    """The Service a gateway route sends its share to: the model's own while it is the only track."""
    version: str
    image: pulumi.Input[str]
    prefix: str
    """Its weights' prefix in the model's artifact bucket ("" without an artifact in S3)."""
    weight: int
    """Its percent of the traffic through a gateway."""
    replicas: int | None
    """The canary's fixed count (0 at weight 0); None for the stable track, sized by its autoscaler."""
    sets_replicas: bool
    """This program writes the Deployment's `spec.replicas`: a canary whose model scales by an HPA. Otherwise an
    autoscaler owns them for the track's whole life (else server-side apply conflicts): the stable track's, or the
    canary's own KEDA ScaledObject."""

    @property
    def spec_replicas(self) -> int | None:
        return self.replicas if self.sets_replicas else None


def model_tracks(scope: ModelScope, image: pulumi.Input[str], canary_image: pulumi.Input[str] | None) -> list[Track]:
    """The stable track, and the canary's when the model has one (which needs `canary_image`)."""
    model, name = scope.model, scope.name
    canary = model.canary
    if canary is None:
        return [_stable(scope, image, service=name, weight=100)]
    if canary_image is None:
        raise ValueError(f"ModelService {name}: the model has a canary ({canary.version}) but no canary_image")
    return [
        _stable(scope, image, service=f"{name}-stable", weight=100 - canary.weight),
        Track(
            track=TrackName.CANARY,
            name=f"{name}-canary",
            service=f"{name}-canary",
            version=canary.version,
            image=canary_image,
            prefix=model.canary_artifact_prefix,
            weight=canary.weight,
            replicas=canary_replicas(scope, canary.weight),
            # KEDA's when the model scales with KEDA: the canary's own ScaledObject, paused at its count unless the
            # model scales to zero
            sets_replicas=not scope.scales_with_keda,
        ),
    ]


def _stable(scope: ModelScope, image: pulumi.Input[str], service: str, weight: int) -> Track:
    return Track(
        track=TrackName.STABLE,
        name=scope.name,
        service=service,
        version=scope.model.version,
        image=image,
        prefix=scope.model.artifact_prefix,
        weight=weight,
        replicas=None,
        sets_replicas=False,
    )


def canary_replicas(scope: ModelScope, weight: int) -> int:
    """0 at weight 0 (the roll-back stops the canary's pods too). Through a gateway, at least 2: the
    route sends the canary its share whatever its size, and with one replica every node drain (the
    PDB allows one eviction) would leave that share without a backend. By replica ratio, the share
    of the stable replicas' count the weight asks for."""
    if weight == 0:
        return 0
    by_ratio = max(1, math.ceil(scope.max_replicas * weight / 100))
    return max(2, by_ratio) if scope.cluster.gateway else by_ratio
