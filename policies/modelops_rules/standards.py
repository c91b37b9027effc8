"""The published controls rules implement, with the page that defines each.

Each rule names its own where it is declared (`@resource_rule(..., implements=(pss("baseline", ...),))`), and
they travel with it: into its description (what `pulumi preview --policy-pack` and `modelops check` print), its
SARIF `helpUri`, and the README's parity tables. Controls of the standards that do not apply to what the
program emits are listed here with the reason.
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


KARPENTER_NODECLASSES = "https://karpenter.sh/docs/concepts/nodeclasses/"
KARPENTER_NODEPOOLS = "https://karpenter.sh/docs/concepts/nodepools/"
K8S_GPUS = "https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/"
K8S_CONFIG = "https://kubernetes.io/docs/concepts/configuration/"

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
