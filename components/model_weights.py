"""Where a ModelService's weights come from, decided once: copied from S3 by an init container, mounted from S3 by
the Mountpoint CSI driver, or none (no artifact in S3: the image carries them). Creates, for an artifact in S3, the
service-account role and, per track, the read grant on its version's prefix and (mounted) its static
PersistentVolume and claim."""

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from .common import dns_label, weights_volume_name
from .config import ArtifactAccess, ModelConfig
from .contracts import S3_CSI_DRIVER
from .model_tracks import ModelScope, Track
from .weights_manifest import WeightsManifest

RUN_AS_USER = 65532
"""The model pods' user and group: the mounted weights are theirs."""


class WeightsAccess(StrEnum):
    COPY = "copy"
    """An init container copies the track's prefix to the pod's local disk before the server starts."""
    MOUNT = "mount"
    """The Mountpoint for Amazon S3 CSI driver serves the track's prefix read-only: no copy, no local disk."""
    NONE = "none"
    """No artifact in S3: nothing to grant, copy or mount."""


def weights_access(model: ModelConfig) -> WeightsAccess:
    """The model's `artifactAccess`, for an artifact in S3 (the schema refuses `mount` without one)."""
    if not model.artifact_bucket:
        return WeightsAccess.NONE
    return WeightsAccess.MOUNT if model.artifact_access == ArtifactAccess.MOUNT else WeightsAccess.COPY


@dataclass(frozen=True)
class Weights:
    """Where one track's pods get its weights."""

    access: WeightsAccess
    source: str
    """`s3://bucket/prefix` ("" with none)."""
    claim: str | None
    """The PersistentVolumeClaim its pods mount (`mount` only)."""
    needs: tuple[pulumi.Resource, ...]
    """What its pods need before they start: the read grant on its prefix, its claim."""
    manifest: WeightsManifest | None = None
    """The files its bytes are pinned to: checked in the pod before the server starts (None: not pinned)."""


NO_WEIGHTS = Weights(WeightsAccess.NONE, "", None, ())


def provide_weights(
    scope: ModelScope,
    access: WeightsAccess,
    role: aws.iam.Role | None,
    track: Track,
    manifest: WeightsManifest | None = None,
) -> Weights:
    """Each version's weights are granted and mounted on their own, named by version: a version bump adds the new
    version's grant and volume before its pods start and removes the old ones at the end of the update, after the
    rollout, so running pods never lose their weights nor see another version's under their mount."""
    bucket = scope.model.artifact_bucket
    if access is WeightsAccess.NONE or role is None or bucket is None:
        return NO_WEIGHTS
    source = f"s3://{bucket}/{track.prefix}".rstrip("/")
    grant = _artifact_grant(scope, role, bucket, track)
    if access is WeightsAccess.MOUNT:
        claim_name, claim = _artifact_mount(scope, bucket, track)
        return Weights(access, source, claim_name, (grant, claim), manifest)
    return Weights(access, source, None, (grant,), manifest)


def service_account_role(scope: ModelScope, provider_arn: pulumi.Input[str], tags: dict[str, str]) -> aws.iam.Role:
    """The role the model's pods (and its mounts) read its weights with: assumable only by its ServiceAccount,
    through the cluster's OIDC provider (`provider_arn`, possibly another stack's output)."""
    subject = f"system:serviceaccount:{scope.model.namespace}:{scope.name}"
    return aws.iam.Role(
        f"{scope.name}-role",
        assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
            lambda arn: json.dumps(service_account_trust(arn, subject))
        ),
        tags=tags,
        opts=scope.child(),
    )


def service_account_trust(provider_arn: str, subject: str) -> dict[str, Any]:
    """Who may assume a service-account role: `subject` (`system:serviceaccount:<ns>:<name>`) through the cluster's
    OIDC provider, for STS."""
    issuer = provider_arn.split(":oidc-provider/", 1)[1]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{issuer}:sub": subject, f"{issuer}:aud": "sts.amazonaws.com"}},
            }
        ],
    }


def _artifact_grant(scope: ModelScope, role: aws.iam.Role, bucket: str, track: Track) -> aws.iam.RolePolicy:
    """Read access to one version's weights, as a policy of its own (see `provide_weights`)."""
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=scope.parent)).partition
    return aws.iam.RolePolicy(
        f"{scope.name}-artifact-read-{track.version}",
        role=role.id,
        policy=partition.apply(lambda p: json.dumps(artifact_read_policy(p, bucket, track.prefix))),
        opts=scope.child(),
    )


def _artifact_mount(scope: ModelScope, bucket: str, track: Track) -> tuple[str, k8s.core.v1.PersistentVolumeClaim]:
    """A static PersistentVolume of the Mountpoint for Amazon S3 CSI driver for one version's artifact prefix,
    and the claim bound to it: read-only, as the pods' own user, with the pod's service-account role (so the
    mount can read exactly what the role can: the model's prefixes)."""
    name, version = scope.name, track.version
    labels = scope.labels(version, "model-weights")
    ns, claim = scope.model.namespace, f"{name}-weights-{dns_label(version)}"
    volume = weights_volume_name(ns, name, version)  # PersistentVolumes are cluster-wide
    k8s.core.v1.PersistentVolume(
        f"{name}-weights-{version}-pv",
        metadata={"name": volume, "labels": labels},
        spec={
            "capacity": {"storage": "1Gi"},  # required by the API, ignored by the driver
            "accessModes": ["ReadOnlyMany"],
            # Static provisioning: no class. A PV's storageClassName is a plain string the API drops
            # when empty, so "" would be a perpetual diff; absent means the same "no class" there. The
            # claim's is a pointer, where "" (not absent) keeps the default class from being applied.
            "claimRef": {"namespace": ns, "name": claim},  # no other claim can take it
            "persistentVolumeReclaimPolicy": "Retain",
            "mountOptions": [
                "read-only",
                f"prefix {track.prefix.rstrip('/')}/",
                f"region {scope.cluster.region}",
                f"uid={RUN_AS_USER}",
                f"gid={RUN_AS_USER}",
                "allow-other",
            ],
            "csi": {
                "driver": S3_CSI_DRIVER,
                "volumeHandle": volume,
                "volumeAttributes": {"bucketName": bucket, "authenticationSource": "pod"},
            },
        },
        opts=scope.child(),
    )
    return claim, k8s.core.v1.PersistentVolumeClaim(
        f"{name}-weights-{version}-pvc",
        metadata={"name": claim, "namespace": ns, "labels": labels},
        spec={
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": volume,
        },
        opts=scope.child(),
    )


def artifact_read_policy(partition: str, bucket: str, prefix: str, *more_prefixes: str) -> dict:
    """Read-only access to artifact prefixes (the stable version's, and the canary's when there is one):
    get their objects and list under them, nothing else. ARNs in the account's partition (aws, aws-cn,
    aws-us-gov)."""
    prefixes = [prefix, *more_prefixes]
    if not all(prefixes):
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:{partition}:s3:::{bucket}/*"},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:{partition}:s3:::{bucket}"},
            ],
        }
    keys = [f"arn:{partition}:s3:::{bucket}/{p}/*" for p in prefixes]
    # `chat/1/*`, never the bare `chat/1`, which would list `chat/10/…` too; `aws s3 sync` and Mountpoint list
    # with the trailing `/` (`prefix chat/1/`), which `*` matches empty
    listed = [f"{p}/*" for p in prefixes]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": keys[0] if len(keys) == 1 else keys},
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": listed}},
            },
        ],
    }
