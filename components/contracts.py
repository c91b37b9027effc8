"""The strings the program and its readers must agree on: the label keys and annotations it writes, and the names of
what it hands its objects to (a CSI driver). The policy pack reads some of them; it runs in its own environment and
never imports components/ (CONVENTIONS.md 15), so it keeps its own copies in policies/modelops_rules/contracts.py, and
tests/test_contracts.py holds the two equal (and holds every contract string the pack reads to that module)."""

# The labels every Kubernetes object of the project carries (components.common.standard_labels); the environment and
# cost-owner keys are the AWS tags' too. Selectors use only the name.
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VERSION_LABEL = "app.kubernetes.io/version"
COMPONENT_LABEL = "app.kubernetes.io/component"
ENVIRONMENT_LABEL = "modelops/environment"
COST_OWNER_LABEL = "modelops/cost-owner"
"""The team billed: what cost reports group by."""

POOL_LABEL = "modelops/gpu-pool"
"""Node label Karpenter puts on a pool's nodes; serving workloads select it."""
TRACK_LABEL = "modelops/track"
"""A model pod's track (`stable` or `canary`): the per-track Services, budgets and alerts select on it."""
SCRAPE_LABEL = "modelops/scrape"
"""On the model's main Service only: what its ServiceMonitor selects, so each pod is scraped once."""

COLD_START_ANNOTATION = "modelops/cold-start-seconds"
"""On a ScaledObject that scales to zero: the longest a first request may wait (the documented budget that
`k8s-scale-to-zero` asks for)."""
PAUSED_REPLICAS_ANNOTATION = "autoscaling.keda.sh/paused-replicas"
"""KEDA holds the target at this count and stops scaling it (its HPA is deleted): a fixed count, not an autoscaler
(https://keda.sh/docs/2.21/concepts/scaling-deployments/#pause-autoscaling)."""
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"
"""The Kubernetes provider takes fields another server-side-apply manager set last, instead of failing on the
conflict (pulumi/pulumi-kubernetes#2491)."""
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"
"""What the Kubernetes provider awaits on an object (JSONPath conditions, as `kubectl wait --for=jsonpath`)."""
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
"""On a ServiceAccount: the IAM role EKS's pod identity webhook gives its pods (IAM roles for service accounts)."""

S3_CSI_DRIVER = "s3.csi.aws.com"
"""The Mountpoint for Amazon S3 CSI driver (the EKS add-on aws-mountpoint-s3-csi-driver)."""
REGISTRY_ANNOTATIONS = {
    "uri": "modelops/registry-uri",
    "name": "modelops/registry-model",
    "version": "modelops/registry-version",
    "run": "modelops/registry-run",
    "artifact": "modelops/artifact-uri",
}
"""Where a track's weights came from when they are a registered model version (composition/model_registry.py): on
its Deployment and pods, and (with `:` for `/`, as AWS tag keys read) on its fallback's AWS resources."""
WEIGHTS_DIGEST_ANNOTATION = "modelops/weights-sha256"
"""On a track's Deployment and pods (and as `modelops:weights-sha256` on its fallback): the digest of the manifest
its pods check their weights against (components/weights_manifest.py), whatever registry they came from."""
WEIGHTS_SIGNER_ANNOTATION = "modelops/weights-signer"
"""Beside it, for weights that must be signed: `sha256:<fingerprint>` of the trusted public key whose OpenSSF model
signature lists exactly those files (composition/weights_signature.py; model-signing's key hint)."""
