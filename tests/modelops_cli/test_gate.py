"""`modelops gate` on the AWS emulator (moto), with injected scan findings.

What the real service does, and so what is emulated here:
- `DescribeImageScanFindings` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html)
  answers `imageScanStatus` and `imageScanFindings` with `findingSeverityCounts`, `findings` (basic scanning) and
  `enhancedFindings` (enhanced scanning, Amazon Inspector), paginated by `nextToken` (`maxResults` 1 to 1000); an
  image never scanned is `ScanNotFoundException`, an image the repository lacks `ImageNotFoundException`.
- `ImageScanStatus.status` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageScanStatus.html):
  IN_PROGRESS | COMPLETE | FAILED | UNSUPPORTED_IMAGE | ACTIVE | PENDING | SCAN_ELIGIBILITY_EXPIRED |
  FINDINGS_UNAVAILABLE | LIMIT_EXCEEDED | IMAGE_ARCHIVED (botocore's model adds IMAGE_SIZE_EXCEEDED). ACTIVE is
  enhanced scanning's "complete, and kept up to date as new vulnerabilities are published" (ECR Public's page of
  the same type says so); PENDING its "in progress, findings not available yet".
- Severities (`FindingSeverity`): INFORMATIONAL | LOW | MEDIUM | HIGH | CRITICAL | UNDEFINED; Inspector's
  enhanced findings also report UNTRIAGED (moto's own example of an enhanced answer counts one).

- `DescribeImageSigningStatus` (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageSigningStatus.html,
  ECR managed signing with AWS Signer) answers `signingStatuses`, one `ImageSigningStatus` per signing profile whose
  rule the image matched: `signingProfileArn`, `status` IN_PROGRESS | COMPLETE | FAILED, and with FAILED
  `failureCode` and `failureReason`; not paginated. Its errors (botocore's model): ImageNotFoundException,
  RepositoryNotFoundException, InvalidParameterException, ValidationException, ServerException; AccessDeniedException
  as every AWS JSON API answers a principal without the permission.

The emulator: moto 5 serves DescribeImageScanFindings (ScanNotFoundException until StartImageScan ran, then a
canned answer) and takes an injected answer per image through `/moto-api/static/ecr/scan-finding-results`. It
caches the first answer per image id and ignores `nextToken`, so the two cases that need answers in sequence
(more than one page; a scan in progress that completes while `--wait` polls) use botocore's Stubber instead, which
checks every request and answer against ECR's real service model. moto 5 does not serve DescribeImageSigningStatus
(moto/ecr has no signing), so `SigningEcr` stands in front of it: it answers that operation from injected answers,
each checked against botocore's model of the response as Stubber checks them, and forwards the rest to moto.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from components.config.stack import SIGNING_PROFILE_ARN
from components.images import build_fingerprint
from modelops_cli.cli import main
from modelops_cli.common import plan_settings, stack_settings
from modelops_cli.gate import (
    Gate,
    Wait,
    check_ecr_image,
    check_signature,
    deployed_images,
    parse_ref,
    run_gate,
    tag_only_refs,
)
from tests.aws_fakes import aws_env
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # plans stacks and starts a moto server

ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SENTIMENT_REPO, RANKER_REPO = "modelops/prod/sentiment", "modelops/prod/ranker"
RANKER_REF = f"{REGISTRY}/{RANKER_REPO}:1.0.0"
AWS_CLI = "public.ecr.aws/aws-cli/aws-cli:"
TRUSTED = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/modelops_prod"
OTHER = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/someone_else"


def gated_stack(directory: Path, security: dict | None = None) -> Path:
    """A prod stack of two models: `sentiment` built from models/sentiment, `ranker` a pre-built image of the
    account's ECR given by tag; the GPU pools (and so their nvcr.io exporter) stay."""
    data = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    config = data["config"]
    sentiment = config["modelops:models"]["sentiment"]
    sentiment["fallback"] = "none"
    ranker = copy.deepcopy(sentiment)
    ranker.update(version="1.0.0", image={"ref": RANKER_REF}, artifactUri="s3://acme-models-prod/ranker/1.0.0")
    config["modelops:models"] = {"sentiment": sentiment, "ranker": ranker}
    if security is not None:
        config["modelops:security"] = security
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory) -> Path:
    return gated_stack(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def planned(stack_file):
    settings = stack_settings("prod", str(stack_file))
    return deployed_images(plan_settings(settings), tag_only_refs(settings.model))


@pytest.fixture
def ecr(moto_server, monkeypatch):
    moto_server.reset()
    aws_env(monkeypatch, moto_server.url)
    return boto3.client("ecr", region_name=REGION)


SIGNING_TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeImageSigningStatus"


class SigningEcr:
    """ECR with managed signing: DescribeImageSigningStatus answered from `answer`'s injections (moto 5 does not
    serve it), everything else forwarded to moto. The requests it answered are kept in `asked`."""

    def __init__(self, moto):
        self.answers: dict[tuple[str, str], list] = {}
        self.asked: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Amz-Target") == SIGNING_TARGET:
                    return self._send(*owner.respond(json.loads(body)))
                conn = http.client.HTTPConnection("127.0.0.1", moto.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request("POST", self.path, body, headers)
                answer = conn.getresponse()
                self._send(answer.status, answer.read())
                conn.close()

            def _send(self, status: int, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, repository: str, tag: str, *answers) -> None:
        """What ECR answers for `repository:tag`, in turn (the last one stays): a list of `ImageSigningStatus`,
        or an error `(code, message)`."""
        shape = (
            boto3.client("ecr", region_name=REGION)
            .meta.service_model.operation_model("DescribeImageSigningStatus")
            .output_shape
        )
        for one in answers:
            if isinstance(one, list):
                report = ParamValidator().validate({"signingStatuses": one}, shape)
                assert not report.has_errors(), report.generate_report()
                statuses = shape.members["signingStatuses"].member.members["status"].enum
                assert all(status["status"] in statuses for status in one)
        self.answers[(repository, tag)] = list(answers)

    def respond(self, request: dict) -> tuple[int, bytes]:
        self.asked.append(request)
        image_id = request["imageId"]
        turns = self.answers.get((request["repositoryName"], image_id.get("imageTag", "")), [[]])
        one = turns.pop(0) if len(turns) > 1 else turns[0]
        if isinstance(one, tuple):
            return 400, json.dumps({"__type": one[0], "message": one[1]}).encode()
        body = {**request, "registryId": request.get("registryId", ACCOUNT), "signingStatuses": one}
        return 200, json.dumps(body).encode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def signing(moto_server, monkeypatch):
    """The emulated ECR with managed signing in front of moto, boto3 pointed at it; its client and the fake."""
    moto_server.reset()
    fake = SigningEcr(moto_server)
    aws_env(monkeypatch, fake.url)
    yield boto3.client("ecr", region_name=REGION), fake
    fake.stop()


def signed(profile: str = TRUSTED, status: str = "COMPLETE", **failure) -> dict:
    return {"signingProfileArn": profile, "status": status, **failure}


def push(client, repository: str, tag: str) -> str:
    """An image in the emulated registry (its digest); the repository made when missing."""
    with contextlib.suppress(client.exceptions.RepositoryAlreadyExistsException):
        client.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest(),
        },
        "layers": [],
    }
    answer = client.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    return answer["image"]["imageId"]["imageDigest"]


def scanned(moto_server, client, repository: str, tag: str, status: str = "COMPLETE", **findings) -> None:
    """The scan ECR would have made of `repository:tag`, with the answer DescribeImageScanFindings gives."""
    client.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})
    answer = {
        "registryId": ACCOUNT,
        "repositoryName": repository,
        "imageId": {"imageTag": tag},
        "imageScanStatus": {"status": status, "description": f"scan {status.lower()}"},
        "imageScanFindings": findings,
    }
    moto_server.post("/moto-api/static/ecr/scan-finding-results", {"results": [answer], "region": REGION})


def basic(name: str, severity: str) -> dict:
    return {"name": name, "uri": f"https://nvd.nist.gov/vuln/detail/{name}", "severity": severity, "attributes": []}


def ecr_image(repository: str, tag: str):
    return parse_ref(f"{REGISTRY}/{repository}:{tag}", ("test",))


# --- which images -------------------------------------------------------------------------------------------


def test_every_deployed_image_is_gated_as_the_program_would_deploy_it(planned):
    refs = {image.ref: image for image in planned}
    fingerprint = build_fingerprint("models/sentiment", "Dockerfile", {}, "linux/amd64", None)
    built = refs[f"{REGISTRY}/{SENTIMENT_REPO}:1.3.0-{fingerprint}"]  # components/model_image.py's tag
    assert (built.registry_id, built.region, built.repository, built.tag) == (
        ACCOUNT,
        REGION,
        SENTIMENT_REPO,
        f"1.3.0-{fingerprint}",
    )
    # the pre-built image given by tag is asked about by that tag, not by the digest the offline plan made up
    assert refs[RANKER_REF].tag == "1.0.0" and refs[RANKER_REF].used_by == ("ranker-deployment",)
    assert not any(ref.startswith(f"{REGISTRY}/{RANKER_REPO}@") for ref in refs)
    # the platform's own images count too: the weights fetch init container and the GPU pools' exporter
    outside = [ref for ref, image in refs.items() if image.registry_id is None]
    assert any(ref.startswith(AWS_CLI) for ref in outside)
    assert any(ref.startswith("nvcr.io/nvidia/k8s/dcgm-exporter@sha256:") for ref in outside)


# --- one image against ECR, on the emulator -----------------------------------------------------------------


def test_an_unscanned_image_fails(ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert verdict.outcome == "fail" and verdict.reason.startswith("not scanned: ECR holds no scan")


def test_an_image_missing_from_the_repository_fails(ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "9.9"), "HIGH")
    assert verdict.outcome == "fail"
    assert (
        f"not in the repository: {SENTIMENT_REPO} in registry {ACCOUNT} ({REGION}) has no such image" in verdict.reason
    )


def test_a_failed_scan_fails_with_its_status(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(moto_server, ecr, SENTIMENT_REPO, "1.0", status="FAILED")
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert (verdict.outcome, verdict.reason) == ("fail", "scan not usable: status FAILED (scan failed)")


@pytest.mark.parametrize("status", ["FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED", "UNSUPPORTED_IMAGE"])
def test_no_other_status_passes(moto_server, ecr, status):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(moto_server, ecr, SENTIMENT_REPO, "1.0", status=status, findingSeverityCounts={})
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert verdict.outcome == "fail" and f"status {status}" in verdict.reason


def test_a_critical_finding_fails(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(
        moto_server,
        ecr,
        SENTIMENT_REPO,
        "1.0",
        findingSeverityCounts={"CRITICAL": 1, "LOW": 1},
        findings=[basic("CVE-2024-0001", "CRITICAL"), basic("CVE-2024-0002", "LOW")],
    )
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert (verdict.outcome, verdict.reason) == ("fail", "findings at or above HIGH: CRITICAL (CVE-2024-0001)")


def test_a_high_finding_fails_at_threshold_high_and_passes_at_critical(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(
        moto_server, ecr, SENTIMENT_REPO, "1.0", findingSeverityCounts={"HIGH": 1}, findings=[basic("CVE-1", "HIGH")]
    )
    image = ecr_image(SENTIMENT_REPO, "1.0")
    assert check_ecr_image(ecr, image, "HIGH").outcome == "fail"
    assert check_ecr_image(ecr, image, "CRITICAL").outcome == "pass"


def test_only_low_findings_pass(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(moto_server, ecr, SENTIMENT_REPO, "1.0", findingSeverityCounts={"LOW": 2}, findings=[basic("CVE-3", "LOW")])
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert (verdict.outcome, verdict.reason) == ("pass", "scan COMPLETE: worst finding LOW, below HIGH")


def test_a_finding_nobody_rated_fails(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    scanned(moto_server, ecr, SENTIMENT_REPO, "1.0", findingSeverityCounts={"UNDEFINED": 1})
    verdict = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "CRITICAL")
    assert verdict.outcome == "fail" and "UNDEFINED" in verdict.reason


def test_enhanced_findings_are_judged_and_closed_ones_ignored(moto_server, ecr):
    push(ecr, SENTIMENT_REPO, "1.0")
    push(ecr, SENTIMENT_REPO, "2.0")
    enhanced = {
        "awsAccountId": ACCOUNT,
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/abc",
        "severity": "HIGH",
        "status": "ACTIVE",
        "title": "CVE-2025-1111 - openssl",
    }
    closed = {**enhanced, "severity": "CRITICAL", "status": "CLOSED", "title": "CVE-2020-9 - zlib"}
    scanned(moto_server, ecr, SENTIMENT_REPO, "1.0", status="ACTIVE", enhancedFindings=[enhanced, closed])
    scanned(moto_server, ecr, SENTIMENT_REPO, "2.0", status="ACTIVE", enhancedFindings=[closed])
    failed = check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "1.0"), "HIGH")
    assert (failed.outcome, failed.reason) == ("fail", "findings at or above HIGH: HIGH (CVE-2025-1111 - openssl)")
    assert check_ecr_image(ecr, ecr_image(SENTIMENT_REPO, "2.0"), "HIGH").outcome == "pass"


def test_an_image_pinned_by_digest_is_asked_about_by_its_digest(moto_server, ecr):
    digest = push(ecr, RANKER_REPO, "1.0.0")
    scanned(moto_server, ecr, RANKER_REPO, "1.0.0", findingSeverityCounts={"MEDIUM": 1})
    image = parse_ref(f"{REGISTRY}/{RANKER_REPO}@{digest}", ("ranker-deployment",))
    assert image.image_id == {"imageDigest": digest}
    assert check_ecr_image(ecr, image, "HIGH").outcome == "pass"


# --- answers in sequence: botocore's Stubber against ECR's real model --------------------------------------


def page(status="COMPLETE", token=None, **findings):
    answer = {"imageScanStatus": {"status": status}, "imageScanFindings": findings}
    return {**answer, "nextToken": token} if token else answer


def test_findings_are_read_on_every_page():
    client = boto3.client("ecr", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    image = ecr_image(SENTIMENT_REPO, "1.0")
    request = {
        "registryId": ACCOUNT,
        "repositoryName": SENTIMENT_REPO,
        "imageId": {"imageTag": "1.0"},
        "maxResults": 1000,
    }
    with Stubber(client) as stub:
        # the counts of page one say LOW only (as an answer may, when they leave a severity out); page two holds a CRITICAL
        stub.add_response(
            "describe_image_scan_findings",
            page(token="t1", findingSeverityCounts={"LOW": 1}, findings=[basic("CVE-4", "LOW")]),
            request,
        )
        stub.add_response(
            "describe_image_scan_findings", page(findings=[basic("CVE-5", "CRITICAL")]), {**request, "nextToken": "t1"}
        )
        verdict = check_ecr_image(client, image, "HIGH")
        stub.assert_no_pending_responses()
    assert (verdict.outcome, verdict.reason) == ("fail", "findings at or above HIGH: CRITICAL (CVE-5)")


def test_wait_asks_again_until_the_scan_ends_and_never_passes_one_still_running():
    client = boto3.client("ecr", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    image = ecr_image(SENTIMENT_REPO, "1.0")
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    with Stubber(client) as stub:
        stub.add_response("describe_image_scan_findings", page("IN_PROGRESS"))
        stub.add_response("describe_image_scan_findings", page("COMPLETE", findingSeverityCounts={"LOW": 1}))
        gate = run_gate(Gate("HIGH", ()), [image], lambda region: client, Wait(60, sleep, lambda: now[0]))
    assert [v.outcome for v in gate.verdicts] == ["pass"] and slept == [15.0]

    with Stubber(client) as stub:
        for _ in range(3):  # at 0 s, at 15 s, and at the 20 s deadline
            stub.add_response("describe_image_scan_findings", page("PENDING"))
        now[0], slept[:] = 0.0, []
        gate = run_gate(Gate("HIGH", ()), [image], lambda region: client, Wait(20, sleep, lambda: now[0]))
        stub.assert_no_pending_responses()
    assert gate.failed and gate.verdicts[0].reason == "scan in progress: status PENDING"
    assert slept == [15.0, 5.0]  # the deadline bounds the wait


# --- signatures: ECR managed signing's status, on the emulator -----------------------------------------


def test_an_image_signed_by_a_trusted_profile_passes(signing):
    client, fake = signing
    push(client, SENTIMENT_REPO, "1.0")
    fake.answer(SENTIMENT_REPO, "1.0", [signed(OTHER, "FAILED"), signed()])
    verdict = check_signature(client, ecr_image(SENTIMENT_REPO, "1.0"), (TRUSTED,))
    assert (verdict.outcome, verdict.rule) == ("pass", "image-signed")
    assert verdict.reason == f"signed: status COMPLETE by {TRUSTED}"
    assert fake.asked == [{"registryId": ACCOUNT, "repositoryName": SENTIMENT_REPO, "imageId": {"imageTag": "1.0"}}]


@pytest.mark.parametrize(
    ("answer", "reason", "waiting"),
    [
        (
            [],
            "not signed: ECR holds no managed signature of this image (a signing rule must cover its repository; "
            "images pushed before the rule are not signed: push again)",
            True,
        ),
        ([signed(status="IN_PROGRESS")], f"signing in progress: status IN_PROGRESS by {TRUSTED}", True),
        (
            # the codes are ECR's own strings, passed on as they come (the model types them as free text)
            # ECR's text is shown inert: an escape sequence in it reaches the terminal as text
            [signed(status="FAILED", failureCode="AccessDenied", failureReason="no signer:SignPayload\x1b[2J")],
            f"signing not usable: status FAILED by {TRUSTED} (AccessDenied: no signer:SignPayload\\x1b[2J)",
            False,
        ),
        (
            [signed(OTHER)],
            "not signed by a trusted profile (modelops:security.trustedSigningProfiles): only by "
            f"{OTHER} (COMPLETE)",
            False,
        ),
        (
            ("AccessDeniedException", "User is not authorized to perform: ecr:DescribeImageSigningStatus"),
            "AccessDeniedException: the credentials lack ecr:DescribeImageSigningStatus",
            False,
        ),
        (
            ("UnknownOperationException", ""),
            f"ECR in {REGION} does not know DescribeImageSigningStatus: no managed signing in that region",
            False,
        ),
        (
            ("ImageNotFoundException", "The image requested does not exist"),
            f"not in the repository: {SENTIMENT_REPO} in registry {ACCOUNT} ({REGION}) has no such image; push it "
            "first",
            False,
        ),
    ],
    ids=["no-signature", "in-progress", "failed", "other-profile", "access-denied", "unknown-operation", "no-image"],
)
def test_an_image_without_a_trusted_signature_fails_with_its_reason(signing, answer, reason, waiting):
    client, fake = signing
    push(client, SENTIMENT_REPO, "1.0")
    fake.answer(SENTIMENT_REPO, "1.0", answer)
    verdict = check_signature(client, ecr_image(SENTIMENT_REPO, "1.0"), (TRUSTED,))
    assert (verdict.outcome, verdict.rule, verdict.reason, verdict.waiting) == ("fail", "image-signed", reason, waiting)


def test_trusted_profiles_are_spelled_as_ecr_answers_them():
    shape = boto3.client("ecr", region_name=REGION).meta.service_model.shape_for("SigningProfileArn")
    assert SIGNING_PROFILE_ARN.pattern == shape.metadata["pattern"].replace("\\/", "/")


def test_signatures_are_asked_only_where_trusted_profiles_are_given(moto_server, signing):
    client, fake = signing
    push(client, SENTIMENT_REPO, "1.0")
    scanned(moto_server, client, SENTIMENT_REPO, "1.0", findingSeverityCounts={})
    image = ecr_image(SENTIMENT_REPO, "1.0")
    unsigned = run_gate(Gate("HIGH", ()), [image], lambda region: client)
    assert [(v.rule, v.outcome) for v in unsigned.verdicts] == [("image-findings-below-threshold", "pass")]
    assert fake.asked == []
    required = run_gate(Gate("HIGH", (), (TRUSTED,)), [image], lambda region: client)
    assert [(v.rule, v.outcome) for v in required.verdicts] == [
        ("image-findings-below-threshold", "pass"),
        ("image-signed", "fail"),
    ]
    assert required.images == (1, 1)  # one image, failed: its signature is missing


def test_wait_asks_again_until_signing_ends(moto_server, signing):
    client, fake = signing
    push(client, SENTIMENT_REPO, "1.0")
    scanned(moto_server, client, SENTIMENT_REPO, "1.0", findingSeverityCounts={})
    fake.answer(SENTIMENT_REPO, "1.0", [], [signed(status="IN_PROGRESS")], [signed()])
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    gate = Gate("HIGH", (), (TRUSTED,))
    run_gate(gate, [ecr_image(SENTIMENT_REPO, "1.0")], lambda region: client, Wait(60, sleep, lambda: now[0]))
    assert [v.outcome for v in gate.verdicts] == ["pass", "pass"] and slept == [15.0, 15.0]
    assert len(fake.asked) == 3  # the scan, passed at once, was not asked again

    fake.answer(SENTIMENT_REPO, "1.0", [signed(status="IN_PROGRESS")])
    now[0], slept[:] = 0.0, []
    run_gate(gate, [ecr_image(SENTIMENT_REPO, "1.0")], lambda region: client, Wait(10, sleep, lambda: now[0]))
    assert gate.failed and gate.verdicts[1].reason.startswith("signing in progress") and slept == [10.0]


# --- outside ECR ------------------------------------------------------------------------------------------


def test_images_outside_ecr_fail_unless_allowed_and_pinned():
    pinned = parse_ref("nvcr.io/nvidia/k8s/dcgm-exporter@sha256:" + "a" * 64, ("pool",))
    by_tag = parse_ref("nvcr.io/nvidia/k8s/dcgm-exporter:4.1", ("pool",))
    no_client = pytest.fail  # nothing outside ECR is asked of AWS
    denied = run_gate(Gate("HIGH", ()), [pinned], no_client).verdicts[0]
    assert (denied.outcome, denied.reason) == (
        "fail",
        "not scanned by ECR: list it (or its registry prefix) in modelops:security.allowUnscannedImages",
    )
    allowed = run_gate(Gate("HIGH", ("nvcr.io/nvidia/k8s/",)), [pinned, by_tag], no_client).verdicts
    assert [v.outcome for v in allowed] == ["allowed", "fail"]
    assert allowed[1].reason.startswith("not scanned by ECR, and not pinned by digest")
    # where signatures are required, the allowance is what lets the image through: ECR knows no signature of it
    signing = run_gate(Gate("HIGH", ("nvcr.io/nvidia/k8s/",), (TRUSTED,)), [pinned], no_client).verdicts
    assert [(v.outcome, v.reason) for v in signing] == [
        ("allowed", "not scanned by ECR, nor its signature checked; allowed by nvcr.io/nvidia/k8s/")
    ]


# --- the verb -----------------------------------------------------------------------------------------------


def push_and_scan_stack(moto_server, ecr, planned, sentiment_findings: dict) -> None:
    for image in planned:
        if image.registry_id and image.tag:
            push(ecr, image.repository, image.tag)
            findings = sentiment_findings if image.repository == SENTIMENT_REPO else {"findingSeverityCounts": {}}
            scanned(moto_server, ecr, image.repository, image.tag, **findings)


def test_the_verb_passes_a_stack_with_only_low_findings(moto_server, ecr, planned, stack_file, capsys):
    push_and_scan_stack(moto_server, ecr, planned, {"findingSeverityCounts": {"LOW": 3}})
    assert main(["gate", "--stack-file", str(stack_file)]) == 0
    out = capsys.readouterr().out
    assert "image gate passed for stack prod" in out and "FAIL" not in out
    assert f"ALLOWED  {AWS_CLI}" in out  # prod's allowUnscannedImages


def test_the_verb_refuses_a_high_finding_and_writes_sarif(moto_server, ecr, planned, stack_file, tmp_path, capsys):
    push_and_scan_stack(
        moto_server,
        ecr,
        planned,
        {"findingSeverityCounts": {"HIGH": 1}, "findings": [basic("CVE-6\x1b[2J\u202e", "HIGH")]},
    )
    sarif_path = tmp_path / "gate.sarif"
    assert main(["gate", "--stack-file", str(stack_file), "--format", "sarif", "--out", str(sarif_path)]) == 1
    out = capsys.readouterr().out
    assert "image gate FAILED for stack prod" in out and "\x1b" not in out and "CVE-6\\x1b[2J\\u202e" in out
    run = json.loads(sarif_path.read_text())["runs"][0]
    assert run["tool"]["driver"]["name"] == "modelops-gate"
    # allowances are suppressed results (code scanning shows them as dismissed), not failures
    failures = [r for r in run["results"] if not r.get("suppressions")]
    assert len(failures) == 1 and failures[0]["ruleId"] == "image-findings-below-threshold"
    assert failures[0]["level"] == "error" and "\x1b" not in failures[0]["message"]["text"]
    exempt = [r for r in run["results"] if r.get("suppressions")]
    assert exempt and all(r["ruleId"] == "image-outside-ecr" for r in exempt)


def test_a_stack_that_does_not_require_the_gate_passes_without_asking_aws(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail
    path = gated_stack(tmp_path, {"requireImageGate": False})
    assert main(["gate", "--stack-file", str(path)]) == 0
    assert "image gate: not required for stack prod" in capsys.readouterr().out
    assert main(["gate", "--stack-file", str(path), "--build-targets"]) == 0
    assert capsys.readouterr().out == ""


def test_build_targets_are_the_stack_image_builds(stack_file, capsys):
    assert main(["gate", "--stack-file", str(stack_file), "--build-targets"]) == 0
    targets = capsys.readouterr().out.splitlines()
    assert (
        "urn:pulumi:prod::modelops::modelops:index:ModelImage$aws:ecr/repository:Repository::sentiment-repo" in targets
    )
    assert any(
        t.startswith(
            "urn:pulumi:prod::modelops::modelops:index:ModelImage$docker-build:index:Image::sentiment-image-1.3.0"
        )
        for t in targets
    )
    assert not any("Deployment" in t for t in targets)


def signing_stack(directory: Path) -> Path:
    """The gated stack with prod's allowances, requiring signatures by TRUSTED."""
    prod = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]["modelops:security"]
    return gated_stack(directory, {**prod, "trustedSigningProfiles": [TRUSTED]})


def push_scan_and_sign(moto_server, signing, planned, unsigned_repository: str | None = None) -> None:
    client, fake = signing
    push_and_scan_stack(moto_server, client, planned, {"findingSeverityCounts": {}})
    for image in planned:
        if image.registry_id and image.tag and image.repository != unsigned_repository:
            fake.answer(image.repository, image.tag, [signed()])


def test_the_verb_passes_a_stack_whose_images_are_signed(moto_server, signing, planned, tmp_path, capsys):
    push_scan_and_sign(moto_server, signing, planned)
    assert main(["gate", "--stack-file", str(signing_stack(tmp_path)), "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["passed"] and body["trustedSigningProfiles"] == [TRUSTED]
    signatures = [entry for entry in body["images"] if entry["rule"] == "image-signed"]
    ecr_refs = {image.ref for image in planned if image.registry_id}
    assert {entry["ref"] for entry in signatures} == ecr_refs and len(signatures) == len(ecr_refs) == 2
    assert all(entry["outcome"] == "pass" for entry in signatures)


def test_the_verb_refuses_an_unsigned_image_and_writes_sarif(moto_server, signing, planned, tmp_path, capsys):
    push_scan_and_sign(moto_server, signing, planned, unsigned_repository=RANKER_REPO)
    sarif_path = tmp_path / "gate.sarif"
    stack = signing_stack(tmp_path)
    assert main(["gate", "--stack-file", str(stack), "--format", "sarif", "--out", str(sarif_path)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL     {RANKER_REF}\n         not signed: ECR holds no managed signature" in out
    assert "image gate FAILED for stack prod" in out and "1 failed" in out
    assert "signatures by 1 trusted profile(s)" in out
    run = json.loads(sarif_path.read_text())["runs"][0]
    failures = [r for r in run["results"] if not r.get("suppressions")]
    assert [(r["ruleId"], r["level"]) for r in failures] == [("image-signed", "error")]
    assert failures[0]["message"]["text"].startswith(f"{RANKER_REF}: not signed")
    assert "image-signed" in {rule["id"] for rule in run["tool"]["driver"]["rules"]}


@pytest.mark.parametrize(
    ("security", "problem"),
    [
        ({"maxImageSeverity": "SEVERE"}, "modelops:security.maxImageSeverity"),
        ({"allowUnscannedImages": ["nvcr.io"]}, "modelops:security.allowUnscannedImages"),
        ({"trustedSigningProfiles": ["modelops_prod"]}, "modelops:security.trustedSigningProfiles"),
        (
            {"trustedSigningProfiles": [f"{TRUSTED}/3f1e5c0a9b"]},  # a profile version: ECR answers the bare ARN
            "modelops:security.trustedSigningProfiles",
        ),
    ],
)
def test_a_bad_security_key_is_a_usage_error_naming_it(tmp_path, capsys, security, problem):
    assert main(["gate", "--stack-file", str(gated_stack(tmp_path, security))]) == 2
    assert problem in capsys.readouterr().err


def test_a_wait_out_of_bounds_is_a_usage_error(stack_file, capsys):
    assert main(["gate", "--stack-file", str(stack_file), "--wait", "-1"]) == 2
    assert "--wait -1: give 0 to 3600 seconds" in capsys.readouterr().err


def test_the_deploy_runs_the_gate_before_pulumi_up():
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "up.yml").read_text())["jobs"]["up"]["steps"]
    runs = [s.get("run", "") for s in steps]
    gate = next(i for i, run in enumerate(runs) if "modelops gate --stack" in run and "--build-targets" not in run)
    push_images = next(i for i, run in enumerate(runs) if "--build-targets" in run)
    up = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("pulumi/actions"))
    assert push_images < gate < up


def test_a_profile_arn_with_a_trailing_newline_is_refused():
    from components.config.stack import SecurityConfig

    arn = "arn:aws:signer:us-east-1:123456789012:/signing-profiles/modelops_prod"
    assert SecurityConfig(trusted_signing_profiles=[arn]).trusted_signing_profiles == [arn]
    with pytest.raises(ValueError, match="give an AWS Signer signing profile ARN"):
        SecurityConfig(trusted_signing_profiles=[arn + "\n"])


def test_an_ecr_reference_without_tag_or_digest_is_asked_as_latest():
    image = parse_ref("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/model", ("Deployment chat",))
    assert (image.repository, image.image_id) == ("team/model", {"imageTag": "latest"})
