"""What each rule implements: the published control it enforces, with the page that defines it.

A rule's citations travel with it: into its description (what `pulumi preview --policy-pack` and
`modelops check` print), its SARIF `helpUri`, and the README's parity tables. Controls of the
standards that do not apply to what the program emits are listed with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

PSS_URL = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
FSBP_URL = "https://docs.aws.amazon.com/securityhub/latest/userguide/{service}-controls.html#{service}-{number}"


@dataclass(frozen=True)
class Control:
    standard: str
    """`PSS baseline`, `PSS restricted`, `AWS FSBP` (AWS Foundational Security Best Practices), `Security Hub`
    (a Security Hub control outside FSBP), or the project whose documentation the rule follows."""
    control: str
    """The control's id or name within its standard."""
    url: str

    @property
    def label(self) -> str:
        return f"{self.standard} {self.control}"


def pss(profile: str, control: str) -> Control:
    return Control(f"PSS {profile}", control, f"{PSS_URL}#{profile}")


def fsbp(control: str, standard: str = "AWS FSBP") -> Control:
    service, number = control.lower().split(".")
    return Control(standard, control, FSBP_URL.format(service=service, number=number))


def doc(project: str, topic: str, url: str) -> Control:
    return Control(project, topic, url)


KARPENTER_DISRUPTION = "https://karpenter.sh/docs/concepts/disruption/"
KARPENTER_NODECLASSES = "https://karpenter.sh/docs/concepts/nodeclasses/"
KARPENTER_NODEPOOLS = "https://karpenter.sh/docs/concepts/nodepools/"
K8S_GPUS = "https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/"
K8S_CONFIG = "https://kubernetes.io/docs/concepts/configuration/"

CITATIONS: dict[str, tuple[Control, ...]] = {
    # Pod Security Standards, baseline
    "k8s-no-host-process": (pss("baseline", "HostProcess"),),
    "k8s-no-host-namespaces": (pss("baseline", "Host Namespaces"), pss("baseline", "Host Ports")),
    "k8s-no-privileged": (pss("baseline", "Privileged Containers"),),
    "k8s-no-hostpath": (pss("baseline", "HostPath Volumes"),),
    "k8s-apparmor": (pss("baseline", "AppArmor"),),
    "k8s-selinux": (pss("baseline", "SELinux"),),
    "k8s-proc-mount": (pss("baseline", "/proc Mount Type"),),
    "k8s-safe-sysctls": (pss("baseline", "Sysctls"),),
    # baseline and restricted
    "k8s-drop-capabilities": (pss("baseline", "Capabilities"), pss("restricted", "Capabilities")),
    "k8s-seccomp": (pss("baseline", "Seccomp"), pss("restricted", "Seccomp")),
    # restricted
    "k8s-volume-types": (pss("restricted", "Volume Types"),),
    "k8s-no-privilege-escalation": (pss("restricted", "Privilege Escalation"),),
    "k8s-run-as-non-root": (pss("restricted", "Running as Non-root"), pss("restricted", "Running as Non-root user")),
    # AWS
    "ecr-scan-on-push": (fsbp("ECR.1"),),
    "ecr-immutable-tags": (fsbp("ECR.2"),),
    "ecr-lifecycle-policy": (fsbp("ECR.3"),),
    "ecr-not-public": (
        doc(
            "Amazon ECR",
            "repository policies",
            "https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policies.html",
        ),
    ),
    "lambda-permission-scoped": (fsbp("Lambda.1"),),
    "lambda-url-iam": (
        fsbp("Lambda.1"),
        doc("AWS Lambda", "function URL auth", "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"),
    ),
    "lambda-tracing": (fsbp("Lambda.7", "Security Hub"),),
    "cloudwatch-alarm-actions": (
        fsbp("CloudWatch.15", "Security Hub"),
        doc(
            "AWS Config",
            "cloudwatch-alarm-action-check",
            "https://docs.aws.amazon.com/config/latest/developerguide/cloudwatch-alarm-action-check.html",
        ),
    ),
    "lambda-image-pinned": (
        doc("AWS Lambda", "container images", "https://docs.aws.amazon.com/lambda/latest/dg/images-create.html"),
    ),
    "lambda-concurrency-cap": (
        doc(
            "AWS Lambda",
            "reserved concurrency",
            "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
        ),
    ),
    "iam-no-wildcard": (fsbp("IAM.1"), fsbp("IAM.21")),
    "s3-model-bucket-private": (fsbp("S3.2"), fsbp("S3.3"), fsbp("S3.8")),
    # Kubernetes workloads
    "k8s-memory-volume-limit": (
        doc(
            "Kubernetes",
            "emptyDir (medium Memory, sizeLimit)",
            "https://kubernetes.io/docs/concepts/storage/volumes/#emptydir",
        ),
    ),
    "k8s-s3-mount-readonly": (
        doc(
            "Mountpoint for Amazon S3 CSI driver",
            "static provisioning, mount options",
            "https://docs.aws.amazon.com/eks/latest/userguide/s3-csi.html",
        ),
    ),
    "k8s-readonly-rootfs": (
        doc(
            "Kubernetes",
            "security context",
            "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/",
        ),
    ),
    "k8s-image-tag": (
        doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/#image-names"),
    ),
    "k8s-image-digest": (
        doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/#image-names"),
    ),
    "k8s-allowed-registries": (doc("Kubernetes", "images", "https://kubernetes.io/docs/concepts/containers/images/"),),
    "k8s-requests-limits": (doc("Kubernetes", "resource management", f"{K8S_CONFIG}manage-resources-containers/"),),
    "k8s-probes": (
        doc(
            "Kubernetes",
            "probes",
            "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/",
        ),
    ),
    "k8s-namespace": (
        doc(
            "Kubernetes", "namespaces", "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/"
        ),
    ),
    "k8s-sa-token": (
        doc(
            "Kubernetes",
            "service account tokens",
            "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting",
        ),
    ),
    "k8s-no-secret-env": (
        doc(
            "Kubernetes",
            "Secrets good practices",
            "https://kubernetes.io/docs/concepts/security/secrets-good-practices/",
        ),
    ),
    "k8s-service-exposure": (
        doc(
            "Kubernetes",
            "Service types",
            "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
        ),
    ),
    "k8s-netpol-coverage": (
        doc(
            "Kubernetes",
            "network policies",
            "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
        ),
    ),
    "k8s-pdb": (doc("Kubernetes", "disruptions", "https://kubernetes.io/docs/concepts/workloads/pods/disruptions/"),),
    "k8s-scale-to-zero": (
        doc(
            "KEDA",
            "scaling to zero (minReplicaCount, activation)",
            "https://keda.sh/docs/latest/concepts/scaling-deployments/",
        ),
    ),
    "k8s-replicas-hpa": (
        doc(
            "Kubernetes",
            "HorizontalPodAutoscaler",
            "https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/",
        ),
    ),
    # GPUs and nodes
    "gpu-limits-match-requests": (doc("Kubernetes", "scheduling GPUs", K8S_GPUS),),
    "gpu-scheduling": (
        doc(
            "Kubernetes",
            "taints and tolerations",
            "https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/",
        ),
    ),
    "gpu-env-bypass": (
        doc(
            "NVIDIA",
            "container toolkit environment",
            "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/docker-specialized.html",
        ),
    ),
    "gpu-startup-probe": (
        doc(
            "Kubernetes",
            "startup probes",
            "https://kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/#startup-probe",
        ),
    ),
    "gpu-hpa-within-pool": (doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
    "gpu-cost-ceiling": (doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
    "karpenter-gpu-limit": (doc("Karpenter", "NodePool limits", f"{KARPENTER_NODEPOOLS}#speclimits"),),
    "karpenter-gpu-taint": (doc("Karpenter", "NodePool taints", f"{KARPENTER_NODEPOOLS}#spectemplatespectaints"),),
    "karpenter-ami-pinned": (
        doc("Karpenter", "AMI selector terms (drift)", f"{KARPENTER_NODECLASSES}#specamiselectorterms"),
    ),
    "node-imdsv2": (fsbp("EC2.8"),),
    "node-disk-encrypted": (
        doc("Karpenter", "block device mappings", f"{KARPENTER_NODECLASSES}#specblockdevicemappings"),
    ),
}
"""Every rule's citations, its primary reference first (that one is its SARIF helpUri)."""

NOT_APPLICABLE: tuple[tuple[Control, str], ...] = (
    (fsbp("ECR.4"), "public repositories: the program creates private ones only"),
    (fsbp("Lambda.2"), "supported runtimes: fallbacks are container images, which have no managed runtime"),
    (fsbp("Lambda.5"), "multi-AZ VPC functions: fallbacks are not attached to a VPC"),
    (fsbp("IAM.2"), "IAM users: the program creates roles only, no users"),
    (fsbp("IAM.3"), "access key rotation: the program creates no access keys"),
    (fsbp("IAM.4"), "root access keys: account-level, outside any stack"),
    (fsbp("IAM.5"), "MFA for console users: the program creates no users"),
    (fsbp("IAM.6"), "root hardware MFA: account-level, outside any stack"),
    (fsbp("IAM.7"), "password policy: account-level, outside any stack"),
    (fsbp("IAM.8"), "unused user credentials: the program creates no users"),
    (fsbp("S3.1"), "account-level Block Public Access: outside any stack"),
    (fsbp("S3.4"), "bucket encryption: the program creates no bucket (the artifact bucket is the user's)"),
    (fsbp("S3.5"), "SSL-only bucket policies: the program creates no bucket"),
    (fsbp("S3.6"), "cross-account bucket permissions: the program creates no bucket"),
    (fsbp("S3.9"), "bucket access logging: the program creates no bucket"),
    (fsbp("S3.10"), "versioned bucket lifecycle: the program creates no bucket"),
    (fsbp("S3.11"), "bucket event notifications: the program creates no bucket"),
)
"""FSBP controls for the services the program uses (ECR, Lambda, IAM, S3; CloudWatch Logs has none) that
have nothing to judge in what it emits, and why."""


def citations(rule_id: str) -> tuple[Control, ...]:
    return CITATIONS[rule_id]


def help_uri(rule_id: str) -> str:
    return CITATIONS[rule_id][0].url


def cited(rule_id: str, description: str) -> str:
    """The description as the CLI shows it: what the rule checks, then what it implements."""
    return f"{description} Implements: {'; '.join(c.label for c in CITATIONS[rule_id])}."
