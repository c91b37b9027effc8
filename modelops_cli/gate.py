"""`modelops gate`: before `pulumi up` of a stack that requires it (prod by default, `modelops:security`), every
image the stack deploys must have a completed ECR scan with no finding at or above
`modelops:security.maxImageSeverity` (HIGH by default) and, where `modelops:security.trustedSigningProfiles` is
set, an ECR managed signature by one of those AWS Signer profiles. Exit 0 pass (or the gate is not required), 1
failed, 2 usage or config error.

Which images: those of the stack's offline plan, as the program would deploy them. A build is gated by the tag
the program pushes (`<repository>:<version>-<fingerprint>`, components/model_image.py), a pinned reference by its
digest, a pre-built `image.ref` given by tag by that tag (the offline plan pins it to a made-up digest: the
registry is not asked offline). Every container of every workload (init containers and the platform's own
images included) and every Lambda image counts.

What passes (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html):
- a scan whose `imageScanStatus.status` is COMPLETE (basic scanning) or ACTIVE (enhanced scanning, Amazon Inspector,
  which keeps the findings current: https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanStatus.html);
- and no finding at or above the threshold: neither in `findingSeverityCounts` nor among the `findings` (basic)
  and `enhancedFindings` (enhanced; CLOSED ones are fixed and do not count), read page by page (`nextToken`). A
  finding of no known rank (UNDEFINED, Inspector's UNTRIAGED) fails: nobody rated it, so it is not a pass.

Everything else fails, with its reason per image: no scan (ScanNotFoundException), a scan in progress (IN_PROGRESS,
PENDING; `--wait SECONDS` polls until it ends), FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE,
SCAN_ELIGIBILITY_EXPIRED, any other status, an image or repository ECR does not hold, an AWS error.

Images outside ECR (nvcr.io, public.ecr.aws, Docker Hub) are not scanned by ECR: they fail unless the stack lists
them in `modelops:security.allowUnscannedImages` (a prefix ending in `/`, or one exact reference) and they are
pinned by digest, so what was allowed is what runs.

Signatures (rule `image-signed`, only where `trustedSigningProfiles` lists AWS Signer signing profile ARNs): ECR
managed signing (https://docs.aws.amazon.com/AmazonECR/latest/userguide/managed-signing.html) signs an image with
AWS Signer, as a Notation signature stored beside it, when it is pushed to a repository a signing rule covers, and
`DescribeImageSigningStatus` (one answer, not paginated; IAM `ecr:DescribeImageSigningStatus`) reports one status
per profile (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageSigningStatus.html). An image
passes with a COMPLETE status by a trusted profile. It fails with its reason otherwise: no status at all (no rule
covers the repository, or the image was pushed before the rule: ECR signs on push; `--wait` asks again, since
signing follows the push), IN_PROGRESS (`--wait` asks again), FAILED (with ECR's failureCode and failureReason),
signed only by profiles the stack does not trust, AccessDeniedException, a region whose ECR does not know the
operation (UnknownOperationException), an image or repository ECR does not hold, any other AWS error. Images
outside ECR carry no status ECR knows: the allowance above is all that lets them through.

What this is and is not: ECR's record that AWS Signer made the signature, read before `up`; the trusted profiles
are the cluster verifier's `trustedIdentities` (the Notation trust policy of the AWS Signer plugin, used by
Kyverno's or Ratify's verification: https://docs.aws.amazon.com/signer/latest/developerguide/image-verification.html).
The gate does not fetch the signature envelope and verify it against AWS Signer's root certificate, nor ask
`signer:GetRevocationStatus`: that is the admission-time verifier's job. Signatures made by hand (the Notation
CLI, cosign) have no managed signing status, so a stack that signs that way leaves `trustedSigningProfiles` empty.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .inert import terminal, without_credentials

RANKED = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
PASSING_STATUSES = ("COMPLETE", "ACTIVE")
WAITING_STATUSES = ("IN_PROGRESS", "PENDING")
MAX_PAGES = 50
"""Pages of findings read per image (1,000 findings each): a bound, not a limit any real image reaches."""
POLL_SECONDS = 15.0
MAX_ATTEMPTS, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS = 4, 5, 20
UNKNOWN_AT_PLAN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's unknown value: the digest of an image built in the same update (its build's tag is gated)."""
ECR_HOST = re.compile(r"^(?P<registry>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
RULES = {
    "image-scan-complete": (
        "Every image has a completed ECR scan",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning.html",
    ),
    "image-findings-below-threshold": (
        "No ECR scan finding at or above modelops:security.maxImageSeverity",
        "https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html",
    ),
    "image-outside-ecr": (
        "Images ECR does not scan are listed in modelops:security.allowUnscannedImages and pinned by digest",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-scanning.html",
    ),
    "image-signed": (
        "Every image has a COMPLETE ECR managed signature by one of modelops:security.trustedSigningProfiles",
        "https://docs.aws.amazon.com/AmazonECR/latest/userguide/managed-signing.html",
    ),
}
SIGNED, SIGNING = "COMPLETE", "IN_PROGRESS"
"""`ImageSigningStatus.status` (IN_PROGRESS | COMPLETE | FAILED): https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageSigningStatus.html"""


@dataclass(frozen=True)
class GatedImage:
    ref: str
    """As deployed: `registry/repo:tag` (a build, or a pre-built tag) or `registry/repo@sha256:…`."""
    used_by: tuple[str, ...]
    registry_id: str | None = None
    """The ECR registry (account) holding it; None outside the account ECRs."""
    region: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None

    @property
    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or ""}


@dataclass(frozen=True)
class Verdict:
    image: GatedImage
    outcome: str
    """`pass`, `fail` or `allowed` (outside ECR, allowlisted)."""
    rule: str
    reason: str
    waiting: bool = False
    """A scan not there yet or still running: `--wait` asks again."""


@dataclass
class Gate:
    threshold: str
    allow_unscanned: tuple[str, ...]
    signing_profiles: tuple[str, ...] = ()
    """The AWS Signer profiles one of which must have signed every ECR image; empty: signatures not checked."""
    verdicts: list[Verdict] = field(default_factory=list)
    """One per image and check: an ECR image's scan, and its signature where profiles are given."""

    @property
    def failed(self) -> bool:
        return any(v.outcome == "fail" for v in self.verdicts)

    @property
    def images(self) -> tuple[int, int]:
        """(images judged, images failed): an image fails when any of its checks does."""
        failed = {v.image.ref for v in self.verdicts if v.outcome == "fail"}
        return len({v.image.ref for v in self.verdicts}), len(failed)


def parse_ref(ref: str, used_by: tuple[str, ...]) -> GatedImage:
    """A reference split into what ECR is asked with; an image outside the account ECRs keeps only its ref."""
    name, _, digest = ref.partition("@")
    host, _, path = name.partition("/")
    match = ECR_HOST.match(host)
    if not match or not path:
        return GatedImage(ref, used_by)
    head, _, last = path.rpartition("/")
    repository_last, _, tag = last.partition(":")
    repository = f"{head}/{repository_last}" if head else repository_last
    # neither tag nor digest: the one the runtime pulls, as docker and containerd default it
    tag = tag or ("latest" if not digest else "")
    return GatedImage(ref, used_by, match["registry"], match["region"], repository, tag or None, digest or None)


def _walk_images(value: Any, in_containers: bool = False) -> Iterator[str]:
    if isinstance(value, dict):
        if in_containers and isinstance(value.get("image"), str):
            yield value["image"]
        for key, child in value.items():
            yield from _walk_images(child, key in CONTAINER_LISTS)
    elif isinstance(value, list):
        for child in value:
            yield from _walk_images(child, in_containers)


def _step_images(step: dict) -> Iterator[str]:
    state = step.get("newState") or {}
    kind, inputs = state.get("type", ""), state.get("inputs") or {}
    if kind == "docker-build:index:Image":
        yield from (t for t in inputs.get("tags") or [] if isinstance(t, str))
    elif kind == "aws:lambda/function:Function" and isinstance(inputs.get("imageUri"), str):
        yield inputs["imageUri"]
    else:
        yield from _walk_images(inputs)


def offline_pin(ref: str) -> str:
    """The digest the offline engine answers for a pre-built reference given by tag (modelops_cli/offline/mocks.py,
    `docker:index/getRegistryImage`): such a pin is made up, so the gate asks ECR about the tag itself."""
    from components.images import by_digest, repository_of

    return by_digest(repository_of(ref), "sha256:" + hashlib.sha256(f"offline:{ref}".encode()).hexdigest())


def deployed_images(plan: dict, tag_refs: list[str]) -> list[GatedImage]:
    """Every image of the plan, once, with the resources that use it; `tag_refs` are the stack's pre-built
    references given by tag."""
    made_up = {offline_pin(ref): ref for ref in tag_refs}
    users: dict[str, list[str]] = {}
    unknown: list[str] = []
    built = False
    for step in plan.get("steps", []):
        if step.get("op") == "delete":
            continue
        name = str(step.get("urn", "")).rsplit("::", 1)[-1]
        for ref in _step_images(step):
            built = built or (step.get("newState") or {}).get("type") == "docker-build:index:Image"
            if ref == UNKNOWN_AT_PLAN:
                unknown.append(name)
                continue
            users.setdefault(made_up.get(ref, ref), []).append(name)
    images = [parse_ref(ref, tuple(sorted(set(names)))) for ref, names in sorted(users.items())]
    if unknown and not built:  # an image only `up` knows that no build of this stack makes: nothing to ask ECR
        images.append(GatedImage("(unknown until up)", tuple(sorted(set(unknown)))))
    return images


def tag_only_refs(cfg) -> list[str]:
    from components.images import DIGEST_MARK

    refs = []
    for model in cfg.models.values():
        for image in (model.image, model.cpu_image, model.canary and model.canary.image):
            if image and image.ref and DIGEST_MARK not in image.ref:
                refs.append(image.ref)
    return refs


def build_targets(plan: dict) -> list[str]:
    """The URNs a targeted `pulumi up` needs to push the stack's builds (their components, repositories and
    images), so that ECR scans them before the gate reads the findings."""
    kinds = ("modelops:index:ModelImage", "aws:ecr/repository:Repository", "docker-build:index:Image")
    return [
        str(step["urn"])
        for step in plan.get("steps", [])
        if step.get("op") != "delete" and (step.get("newState") or {}).get("type") in kinds
    ]


def _rank(severity: str) -> int:
    """Its place in RANKED; a severity of no known rank above them all (it fails at any threshold)."""
    return RANKED.index(severity) if severity in RANKED else len(RANKED)


def _client_config():
    import botocore.config

    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def _pages(client, image: GatedImage) -> Iterator[dict]:
    request: dict[str, Any] = {
        "registryId": image.registry_id,
        "repositoryName": image.repository,
        "imageId": image.image_id,
        "maxResults": 1000,
    }
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page = client.describe_image_scan_findings(**request)
        yield page
        token = page.get("nextToken")
        if not token or token in seen:  # a token answered twice would loop forever
            return
        seen.add(token)
        request["nextToken"] = token


def _ask_ecr(client, image: GatedImage) -> tuple[str, str, list[tuple[str, str]]]:
    """(status, its description, [(severity, finding name)]) of an image's scan, every page read."""
    status, description, found = "", "", []
    for number, page in enumerate(_pages(client, image)):
        if number == 0:
            scan = page.get("imageScanStatus") or {}
            status, description = str(scan.get("status", "")), str(scan.get("description", ""))
            if status not in PASSING_STATUSES:
                return status, description, []
        findings = page.get("imageScanFindings") or {}
        if number == 0:
            counts = findings.get("findingSeverityCounts") or {}
            found += [(str(sev), "") for sev, count in counts.items() if count]
        found += [(str(f.get("severity", "UNDEFINED")), str(f.get("name", ""))) for f in findings.get("findings") or []]
        found += [
            (str(f.get("severity", "UNDEFINED")), str(f.get("title") or f.get("findingArn") or ""))
            for f in findings.get("enhancedFindings") or []
            if f.get("status") != "CLOSED"
        ]
    return status, description, found


def _not_found(image: GatedImage) -> dict[str, tuple[str, bool]]:
    where = f"{image.repository} in registry {image.registry_id} ({image.region})"
    return {
        "ImageNotFoundException": (f"not in the repository: {where} has no such image; push it first", False),
        "RepositoryNotFoundException": (f"no repository {where}", False),
    }


def _refusal(code: str, message: str, image: GatedImage) -> Verdict:
    reasons = {
        "ScanNotFoundException": (
            "not scanned: ECR holds no scan of this image (scan on push, or enhanced scanning, must be on)",
            True,
        ),
        **_not_found(image),
        "AccessDeniedException": ("AccessDeniedException: the credentials lack ecr:DescribeImageScanFindings", False),
    }
    reason, waiting = reasons.get(code, (f"{code}: {message}".strip(), False))
    return Verdict(image, "fail", "image-scan-complete", terminal(reason, 400), waiting)


def _aws_failure(ask: Callable[[], Any], refuse: Callable[[str, str], Verdict], rule: str, image: GatedImage):
    """`ask()`'s answer, or the Verdict an AWS failure makes of it (an error code through `refuse`)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return ask()
    except NoCredentialsError:
        return Verdict(image, "fail", rule, "no AWS credentials to ask ECR with")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return refuse(str(error.get("Code", "")), str(error.get("Message", "")))
    except BotoCoreError as exc:  # quotes the endpoint URL, credentials and all
        return Verdict(image, "fail", rule, terminal(without_credentials(exc), 400))


def check_ecr_image(client, image: GatedImage, threshold: str) -> Verdict:
    answer = _aws_failure(
        lambda: _ask_ecr(client, image), lambda c, m: _refusal(c, m, image), "image-scan-complete", image
    )
    if isinstance(answer, Verdict):
        return answer
    status, description, found = answer
    if status not in PASSING_STATUSES:
        said = f" ({terminal(description, 200)})" if description else ""
        state = "scan in progress" if status in WAITING_STATUSES else "scan not usable"
        reason = f"{state}: status {terminal(status or 'missing', 60)}{said}"
        return Verdict(image, "fail", "image-scan-complete", reason, status in WAITING_STATUSES)
    return _judge_findings(image, status, found, threshold)


def _judge_findings(image: GatedImage, status: str, found: list[tuple[str, str]], threshold: str) -> Verdict:
    blocking = sorted({(s, n) for s, n in found if _rank(s) >= _rank(threshold)}, key=lambda f: (-_rank(f[0]), f[1]))
    if not blocking:
        worst = max((s for s, _ in found), key=_rank, default=None)
        note = f"worst finding {worst}" if worst else "no findings"
        return Verdict(image, "pass", "image-findings-below-threshold", f"scan {status}: {note}, below {threshold}")
    severities = sorted({s for s, _ in blocking}, key=_rank, reverse=True)
    named = [n for _, n in blocking if n]
    reason = f"findings at or above {threshold}: {', '.join(terminal(s, 40) for s in severities)}"
    if named:
        reason += f" ({', '.join(terminal(n, 80) for n in named[:5])}{', …' if len(named) > 5 else ''})"
    return Verdict(image, "fail", "image-findings-below-threshold", reason)


def check_outside_image(image: GatedImage, allowed: tuple[str, ...], signatures: bool = False) -> Verdict:
    """An image outside the account's ECR: neither its scan nor (where signatures are required) its signature
    is known to ECR, so only the stack's allowance lets it through."""
    entry = next((a for a in allowed if image.ref == a or (a.endswith("/") and image.ref.startswith(a))), None)
    unknown = "not scanned by ECR, nor its signature checked" if signatures else "not scanned by ECR"
    if "@sha256:" not in image.ref:
        reason = f"{unknown}, and not pinned by digest: what runs could change after any allowance"
        return Verdict(image, "fail", "image-outside-ecr", reason)
    if entry is None:
        reason = f"{unknown}: list it (or its registry prefix) in modelops:security.allowUnscannedImages"
        return Verdict(image, "fail", "image-outside-ecr", reason)
    return Verdict(image, "allowed", "image-outside-ecr", f"{unknown}; allowed by {terminal(entry, 120)}")


def _signing_refusal(code: str, message: str, image: GatedImage) -> Verdict:
    reasons = {
        **_not_found(image),
        "AccessDeniedException": ("AccessDeniedException: the credentials lack ecr:DescribeImageSigningStatus", False),
        "UnknownOperationException": (
            f"ECR in {image.region} does not know DescribeImageSigningStatus: no managed signing in that region",
            False,
        ),
    }
    reason, waiting = reasons.get(code, (f"{code}: {message}".strip(), False))
    return Verdict(image, "fail", "image-signed", terminal(reason, 400), waiting)


def check_signature(client, image: GatedImage, trusted: tuple[str, ...]) -> Verdict:
    """ECR managed signing's record of the image (one status per signing profile whose rule it matched): it
    passes with a COMPLETE status by a trusted profile."""
    answer = _aws_failure(
        lambda: client.describe_image_signing_status(
            registryId=image.registry_id, repositoryName=image.repository, imageId=image.image_id
        ),
        lambda code, message: _signing_refusal(code, message, image),
        "image-signed",
        image,
    )
    if isinstance(answer, Verdict):
        return answer
    answered = answer.get("signingStatuses") or []
    statuses = [(str(s.get("signingProfileArn", "")), str(s.get("status", ""))) for s in answered]
    ours = {arn: status for arn, status in statuses if arn in trusted}
    by = {status: arn for arn, status in ours.items()}
    if SIGNED in by:
        return Verdict(image, "pass", "image-signed", f"signed: status {SIGNED} by {terminal(by[SIGNED], 200)}")
    if SIGNING in by:
        reason = f"signing in progress: status {SIGNING} by {terminal(by[SIGNING], 200)}"
        return Verdict(image, "fail", "image-signed", reason, waiting=True)
    if ours:
        return Verdict(image, "fail", "image-signed", _unsigned_reason(answered, trusted))
    if statuses:
        others = ", ".join(f"{terminal(arn, 200)} ({terminal(status, 40)})" for arn, status in statuses)
        reason = f"not signed by a trusted profile (modelops:security.trustedSigningProfiles): only by {others}"
        return Verdict(image, "fail", "image-signed", reason)
    reason = (
        "not signed: ECR holds no managed signature of this image (a signing rule must cover its repository; "
        "images pushed before the rule are not signed: push again)"
    )
    return Verdict(image, "fail", "image-signed", reason, waiting=True)


def _unsigned_reason(statuses: list[dict], trusted: tuple[str, ...]) -> str:
    """A trusted profile's signing that FAILED (ECR's failure code and reason), or ended in a status unknown here."""
    said = []
    for status in (s for s in statuses if s.get("signingProfileArn") in trusted):
        why = ": ".join(str(status[k]) for k in ("failureCode", "failureReason") if status.get(k))
        said.append(
            f"status {terminal(str(status.get('status') or 'missing'), 40)} by "
            f"{terminal(str(status['signingProfileArn']), 200)}{f' ({terminal(why, 300)})' if why else ''}"
        )
    return "signing not usable: " + "; ".join(said)


@dataclass(frozen=True)
class Wait:
    """How long `run_gate` asks again while a scan is missing or running, and the clock it waits by."""

    seconds: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


NO_WAIT = Wait()


Check = Callable[[Gate, GatedImage, Callable[[str], Any]], Verdict]


def run_gate(gate: Gate, images: list[GatedImage], client_for: Callable[[str], Any], wait: Wait = NO_WAIT) -> Gate:
    """Judge every image by each of its checks; with `wait.seconds`, ask again those whose scan or signature is
    missing or running until it ends or the time is up (they then fail as they last stood)."""
    sleep, clock = wait.sleep, wait.clock
    deadline = clock() + wait.seconds
    checks = [(image, check) for image in images for check in _checks(gate, image)]
    verdicts = [check(gate, image, client_for) for image, check in checks]
    while any(v.waiting for v in verdicts) and clock() < deadline:
        sleep(min(POLL_SECONDS, max(deadline - clock(), 0.0)))
        verdicts = [
            check(gate, image, client_for) if verdict.waiting else verdict
            for (image, check), verdict in zip(checks, verdicts, strict=True)
        ]
    gate.verdicts = [replace(v, waiting=False) for v in verdicts]
    return gate


def _checks(gate: Gate, image: GatedImage) -> tuple[Check, ...]:
    if image.registry_id is None:
        return (_judge_outside,)
    return (_judge_scan, _judge_signature) if gate.signing_profiles else (_judge_scan,)


def _judge_outside(gate: Gate, image: GatedImage, client_for: Callable[[str], Any]) -> Verdict:
    if image.ref == "(unknown until up)":
        return Verdict(image, "fail", "image-scan-complete", "no build of the stack makes this image: not gated")
    return check_outside_image(image, gate.allow_unscanned, signatures=bool(gate.signing_profiles))


def _judge_scan(gate: Gate, image: GatedImage, client_for: Callable[[str], Any]) -> Verdict:
    assert image.region is not None  # set with the registry
    return check_ecr_image(client_for(image.region), image, gate.threshold)


def _judge_signature(gate: Gate, image: GatedImage, client_for: Callable[[str], Any]) -> Verdict:
    assert image.region is not None
    return check_signature(client_for(image.region), image, gate.signing_profiles)


def format_table(gate: Gate, stack: str) -> str:
    mark = {"pass": "PASS", "fail": "FAIL", "allowed": "ALLOWED"}
    lines = []
    for v in sorted(gate.verdicts, key=lambda v: (v.outcome != "fail", v.image.ref)):
        lines.append(f"{mark[v.outcome]:7}  {terminal(v.image.ref)}")
        lines.append(f"         {v.reason}")
        lines.append(f"         used by: {terminal(', '.join(v.image.used_by), 300)}")
    images, failed = gate.images
    verdict = "FAILED" if failed else "passed"
    signatures = f", signatures by {len(gate.signing_profiles)} trusted profile(s)" if gate.signing_profiles else ""
    lines.append(
        f"image gate {verdict} for stack {terminal(stack)}: {images} image(s), {failed} failed, "
        f"threshold {gate.threshold}{signatures}"
    )
    return "\n".join(lines) + "\n"


def format_json(gate: Gate, stack: str) -> str:
    """`images` holds one entry per image and check: an ECR image's scan, and its signature where required."""
    body = {
        "stack": stack,
        "threshold": gate.threshold,
        "trustedSigningProfiles": list(gate.signing_profiles),
        "passed": not gate.failed,
        "images": [
            {"ref": v.image.ref, "outcome": v.outcome, "rule": v.rule, "reason": v.reason, "usedBy": v.image.used_by}
            for v in gate.verdicts
        ],
    }
    return json.dumps(body, indent=2) + "\n"


def format_sarif(gate: Gate, artifact: str) -> str:
    """The gate's failures (and allowances, as suppressed results) through `check`'s SARIF writer."""
    from .check import CheckReport, Finding
    from .report import format_sarif as check_sarif

    report = CheckReport(
        source=artifact,
        levels=dict.fromkeys(RULES, "mandatory"),
        descriptions={rule: text for rule, (text, _) in RULES.items()},
        cited=dict(RULES),
        resources=gate.images[0],
    )
    for v in gate.verdicts:
        ref = terminal(v.image.ref, 400)  # a stack file's value: one inert line, as everywhere it is shown
        if v.outcome == "fail":
            report.findings.append(Finding(v.rule, "mandatory", "fail", ref, f"{ref}: {v.reason}"))
        elif v.outcome == "allowed":
            report.findings.append(Finding(v.rule, "mandatory", "exempt", ref, f"{ref}: (exempt: {v.reason})"))
    sarif = json.loads(check_sarif(report, artifact))
    driver = sarif["runs"][0]["tool"]["driver"]
    driver.update(name="modelops-gate", informationUri=RULES["image-scan-complete"][1])
    return json.dumps(sarif, indent=2) + "\n"


def gate_plan(cfg: Any, plan: dict[str, Any], wait_seconds: float = 0.0) -> Gate:
    """Judge every image of a stack's plan (`cfg` its validated config) against ECR, one client per region."""
    import boto3

    images = deployed_images(plan, tag_only_refs(cfg))
    security = cfg.security
    gate = Gate(
        security.max_image_severity,
        tuple(security.allow_unscanned_images),
        tuple(security.trusted_signing_profiles),
    )
    session, clients = boto3.session.Session(), {}

    def client_for(region: str):
        if region not in clients:
            clients[region] = session.client("ecr", region_name=region, config=_client_config())
        return clients[region]

    return run_gate(gate, images, client_for, Wait(wait_seconds))
