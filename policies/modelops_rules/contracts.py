"""The strings the rules read that the program writes: the pack's copies of components/contracts.py (the pack runs in
its own environment and never imports components/, CONVENTIONS.md 15). tests/test_contracts.py holds each equal to the
program's, and holds every rule to reading them from here."""

from __future__ import annotations

COLD_START_ANNOTATION = "modelops/cold-start-seconds"
"""On a ScaledObject that scales to zero: the longest a first request may wait (k8s-scale-to-zero asks for it)."""
PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
"""KEDA holds the target at this count and stops scaling it (its HPA is deleted): a fixed count, not an
autoscaler (https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling)."""
S3_CSI_DRIVER = "s3.csi.aws.com"
"""The Mountpoint for Amazon S3 CSI driver: its volumes must be read-only (k8s-s3-mount-readonly)."""
