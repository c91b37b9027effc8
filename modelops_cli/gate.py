"""`modelops gate`: before `pulumi up` of a stack that requires it (prod by default, `modelops:security`), every
image the stack deploys must have a completed ECR scan with no finding at or above
`modelops:security.maxImageSeverity` (HIGH by default). Exit 0 pass (or the gate is not required), 1 failed, 2
usage or config error.

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
pinned by digest, so what was allowed is what runs. Signatures (AWS Signer, Notation, cosign) are not checked.
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
}


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
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(v.outcome == "fail" for v in self.verdicts)


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


def _refusal(code: str, message: str, image: GatedImage) -> Verdict:
    where = f"{image.repository} in registry {image.registry_id} ({image.region})"
    reasons = {
        "ScanNotFoundException": (
            "not scanned: ECR holds no scan of this image (scan on push, or enhanced scanning, must be on)",
            True,
        ),
        "ImageNotFoundException": (f"not in the repository: {where} has no such image; push it first", False),
        "RepositoryNotFoundException": (f"no repository {where}", False),
        "AccessDeniedException": ("AccessDeniedException: the credentials lack ecr:DescribeImageScanFindings", False),
    }
    reason, waiting = reasons.get(code, (f"{code}: {message}".strip(), False))
    return Verdict(image, "fail", "image-scan-complete", terminal(reason, 400), waiting)


def check_ecr_image(client, image: GatedImage, threshold: str) -> Verdict:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        status, description, found = _ask_ecr(client, image)
    except NoCredentialsError:
        return Verdict(image, "fail", "image-scan-complete", "no AWS credentials to read the scan findings with")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return _refusal(str(error.get("Code", "")), str(error.get("Message", "")), image)
    except BotoCoreError as exc:  # quotes the endpoint URL, credentials and all
        return Verdict(image, "fail", "image-scan-complete", terminal(without_credentials(exc), 400))
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


def check_outside_image(image: GatedImage, allowed: tuple[str, ...]) -> Verdict:
    entry = next((a for a in allowed if image.ref == a or (a.endswith("/") and image.ref.startswith(a))), None)
    if "@sha256:" not in image.ref:
        reason = "not scanned by ECR, and not pinned by digest: what runs could change after any allowance"
        return Verdict(image, "fail", "image-outside-ecr", reason)
    if entry is None:
        reason = "not scanned by ECR: list it (or its registry prefix) in modelops:security.allowUnscannedImages"
        return Verdict(image, "fail", "image-outside-ecr", reason)
    return Verdict(image, "allowed", "image-outside-ecr", f"not scanned by ECR; allowed by {terminal(entry, 120)}")


@dataclass(frozen=True)
class Wait:
    """How long `run_gate` asks again while a scan is missing or running, and the clock it waits by."""

    seconds: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


NO_WAIT = Wait()


def run_gate(gate: Gate, images: list[GatedImage], client_for: Callable[[str], Any], wait: Wait = NO_WAIT) -> Gate:
    """Judge every image; with `wait.seconds`, ask again for those whose scan is missing or running until it
    ends or the time is up (they then fail as they last stood)."""
    sleep, clock = wait.sleep, wait.clock
    deadline = clock() + wait.seconds
    verdicts = {image.ref: _judge(gate, image, client_for) for image in images}
    while any(v.waiting for v in verdicts.values()) and clock() < deadline:
        sleep(min(POLL_SECONDS, max(deadline - clock(), 0.0)))
        for ref, verdict in verdicts.items():
            if verdict.waiting:
                verdicts[ref] = _judge(gate, verdict.image, client_for)
    gate.verdicts = [replace(v, waiting=False) for v in verdicts.values()]
    return gate


def _judge(gate: Gate, image: GatedImage, client_for: Callable[[str], Any]) -> Verdict:
    if image.registry_id is None:
        if image.ref == "(unknown until up)":
            return Verdict(image, "fail", "image-scan-complete", "no build of the stack makes this image: not gated")
        return check_outside_image(image, gate.allow_unscanned)
    assert image.region is not None  # set with the registry
    return check_ecr_image(client_for(image.region), image, gate.threshold)


def format_table(gate: Gate, stack: str) -> str:
    mark = {"pass": "PASS", "fail": "FAIL", "allowed": "ALLOWED"}
    lines = []
    for v in sorted(gate.verdicts, key=lambda v: (v.outcome != "fail", v.image.ref)):
        lines.append(f"{mark[v.outcome]:7}  {terminal(v.image.ref)}")
        lines.append(f"         {v.reason}")
        lines.append(f"         used by: {terminal(', '.join(v.image.used_by), 300)}")
    failed = sum(1 for v in gate.verdicts if v.outcome == "fail")
    verdict = "FAILED" if failed else "passed"
    lines.append(
        f"image gate {verdict} for stack {terminal(stack)}: {len(gate.verdicts)} image(s), {failed} failed, "
        f"threshold {gate.threshold}"
    )
    return "\n".join(lines) + "\n"


def format_json(gate: Gate, stack: str) -> str:
    body = {
        "stack": stack,
        "threshold": gate.threshold,
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
        resources=len(gate.verdicts),
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
    gate = Gate(cfg.security.max_image_severity, tuple(cfg.security.allow_unscanned_images))
    session, clients = boto3.session.Session(), {}

    def client_for(region: str):
        if region not in clients:
            clients[region] = session.client("ecr", region_name=region, config=_client_config())
        return clients[region]

    return run_gate(gate, images, client_for, Wait(wait_seconds))
