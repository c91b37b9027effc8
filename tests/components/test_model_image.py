"""ModelImage: an immutable, scanned, encrypted repository and digest-pinned images."""

from __future__ import annotations

import fnmatch
import json

import pulumi
import pytest

from components import ModelImage, ModelImageArgs
from components.config import RegistryConfig
from components.images import NO_DEFAULT_ATTESTATIONS, single_manifest_builds
from components.model_image import CACHE_TAG_PREFIX, lifecycle_rules
from modelops_cli.offline.engine import ProgramError, capture
from modelops_cli.offline.mocks import OfflineMocks
from modelops_cli.plan import UNKNOWN
from tests.components.conftest import model_config


def image_args(
    prefix: str = "m",
    *,
    protect: bool = False,
    images_to_keep: int = 20,
    build_canary: bool = False,
    build_cpu_image: bool = False,
    **model,
) -> ModelImageArgs:
    """ModelImage's args for a model declared as in a stack file (`model` fields, snake_case)."""
    return ModelImageArgs(
        model=model_config(**model),
        registry=RegistryConfig(repository_prefix=prefix, images_to_keep=images_to_keep),
        build_canary=build_canary,
        build_cpu_image=build_cpu_image,
        protect=protect,
    )


PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/vision:1.8.1@sha256:" + "b" * 64


def test_repository_is_immutable_scanned_encrypted_and_pruned(build):
    built = build(
        lambda: ModelImage(
            "chat",
            image_args(
                "modelops/prod", version="2.4.0", image={"context": "models/chat"}, images_to_keep=30, protect=True
            ),
        )
    )
    repo = built.named("chat-repo")
    assert repo["protect"] is True
    inputs = repo["inputs"]
    # every tag but the build caches' is immutable
    assert inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert inputs["imageTagMutabilityExclusionFilters"] == [{"filter": "buildcache-*", "filterType": "WILDCARD"}]
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    assert json.loads(built.inputs("chat-lifecycle")["policy"]) == {"rules": lifecycle_rules(30)}


def _expired_by_lifecycle(rules: list[dict], images: list[tuple[list[str], int]]) -> set[int]:
    """ECR's documented evaluation, reduced to what these rules use: rules apply by priority, and an image
    matched by a rule's tag selection can no longer be expired by a rule of lower priority."""
    claimed: set[int] = set()
    expired: set[int] = set()
    for rule in sorted(rules, key=lambda r: r["rulePriority"]):
        sel = rule["selection"]
        if sel["tagStatus"] == "untagged":
            matched = [i for i, (tags, _) in enumerate(images) if not tags and i not in claimed]
        else:
            matched = [
                i
                for i, (tags, _) in enumerate(images)
                if i not in claimed and any(fnmatch.fnmatchcase(t, p) for t in tags for p in sel["tagPatternList"])
            ]
        claimed.update(matched)
        if sel["countType"] == "imageCountMoreThan":
            newest_first = sorted(matched, key=lambda i: images[i][1])
            expired.update(newest_first[sel["countNumber"] :])
        else:
            expired.update(i for i in matched if images[i][1] > sel["countNumber"])
    return expired


def test_lifecycle_keeps_the_caches_and_the_last_versions_and_drops_superseded_caches():
    images = [([f"2.{n}.0-abc"], n + 10) for n in range(5)]  # versions, newest first
    images += [(["buildcache-serving"], 0), (["buildcache-canary"], 3), (["buildcache-cpu"], 40)]
    images += [([], 2), ([], 0)]  # superseded caches
    expired = _expired_by_lifecycle(lifecycle_rules(3), images)
    # the two oldest versions and the cache superseded two days ago; never a live cache, however old
    assert expired == {3, 4, 8}


def test_build_cache_survives_between_builds_under_its_own_mutable_tag(build):
    built = build(
        lambda: ModelImage(
            "chat",
            image_args(
                version="2.4.0",
                image={"context": "models/chat"},
                canary={"version": "2.5.0", "weight": 10},
                build_canary=True,
            ),
        )
    )
    repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat"
    serving, canary = built.inputs("chat-image-2.4.0"), built.inputs("chat-image-2.5.0")
    assert serving["cacheFrom"] == [{"registry": {"ref": f"{repo}:buildcache-serving"}}]
    # ECR stores a registry cache only as an OCI image manifest; a failed cache write does not fail the deploy
    assert serving["cacheTo"] == [
        {
            "registry": {
                "ref": f"{repo}:buildcache-serving",
                "mode": "max",
                "imageManifest": True,
                "ociMediaTypes": True,
                "ignoreError": True,
            }
        }
    ]
    # the canary builds what the serving image of its version will be: one cache, one resource when promoted
    assert canary["cacheFrom"] == serving["cacheFrom"] and canary["cacheTo"] == serving["cacheTo"]
    # the version tags never fall under the mutable cache tags
    for image in (serving, canary):
        assert not image["tags"][0].rsplit(":", 1)[1].startswith(CACHE_TAG_PREFIX)


def test_build_pushes_with_secret_ecr_credentials_and_versioned_tags(build):
    built = build(
        lambda: ModelImage(
            "chat",
            image_args(
                "modelops/prod", version="2.4.0", image={"context": "models/sentiment", "build_args": {"BASE": "x"}}
            ),
        )
    ).inputs("chat-image-2.4.0")
    assert built["push"] is True
    from components.images import build_fingerprint

    # the tag is the version and a fingerprint of the build's inputs, computed by the component itself
    fingerprint = build_fingerprint("models/sentiment", "Dockerfile", {"BASE": "x"}, "linux/amd64", None)
    assert fingerprint and len(fingerprint) == 12
    assert built["tags"] == [f"123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/prod/chat:2.4.0-{fingerprint}"]
    assert built["labels"]["modelops/build-fingerprint"] == fingerprint
    assert built["platforms"] == ["linux/amd64"] and built["buildArgs"] == {"BASE": "x"}
    registry = built["registries"][0]
    assert registry["password"] == "[secret]" and registry["username"] == "AWS"
    assert registry["address"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    # previews build nothing unless asked: no BuildKit builder is needed to preview a pull request
    assert built["buildOnPreview"] is False


def test_image_ref_is_pinned_by_digest_and_unknown_until_built(build):
    refs: dict[str, str] = {}

    def program():
        image = ModelImage("vision", image_args(version="1.8.1", image={"ref": PINNED}))
        image.image_ref.apply(lambda v: refs.setdefault("prebuilt", v))
        tagged = ModelImage(
            "tagged",
            image_args(version="1", image={"ref": "nvcr.io/nvidia/tritonserver:24.08-py3"}),
        )
        tagged.image_ref.apply(lambda v: refs.setdefault("tagged", v))

    built = build(program)
    # repo@digest, the one form Lambda and the kubelet both take (Lambda refuses repo:tag@digest)
    assert refs["prebuilt"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/vision@sha256:" + "b" * 64
    assert refs["tagged"].startswith("nvcr.io/nvidia/tritonserver@sha256:")
    assert not built.of_type("docker-build:index:Image")  # nothing to build for pre-built images
    # and no repository: the ref lives in a repository this stack does not own (prod's vision image does),
    # whose images a lifecycle rule of ours could expire
    assert not built.of_type("ecr/repository:Repository") and not built.of_type("LifecyclePolicy")


def test_tag_only_refs_are_read_with_the_registry_provider_the_caller_passes(monkeypatch):
    calls = []
    answer = OfflineMocks.call

    def recording(self, args):
        calls.append((args.token, args.provider))
        return answer(self, args)

    monkeypatch.setattr(OfflineMocks, "call", recording)

    def program():
        import pulumi_docker as docker

        registry = docker.Provider(
            "registry",
            registry_auth=[
                {
                    "address": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                    "username": "AWS",
                    "password": pulumi.Output.secret("token"),
                }
            ],
        )
        ModelImage(
            "vision",
            image_args(version="1.8.1", image={"ref": "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/vision:1.8.1"}),
            opts=pulumi.ResourceOptions(providers=[registry]),
        )

    capture(program)
    ((token, provider),) = calls
    # private ECR answers a tag lookup only with credentials: the invoke goes through the caller's provider
    assert token == "docker:index/getRegistryImage:getRegistryImage"
    assert "pulumi:providers:docker::registry" in provider


def test_builds_refuse_to_push_an_image_index_lambda_would_refuse(monkeypatch):
    def program():
        ModelImage(
            "sentiment",
            image_args(version="1.0.0", image={"context": "models/sentiment"}),
        )

    monkeypatch.delenv(NO_DEFAULT_ATTESTATIONS, raising=False)
    with pytest.raises(ProgramError, match=f"{NO_DEFAULT_ATTESTATIONS}=1") as refused:
        capture(program, preview=False)
    assert "Lambda refuses" in str(refused.value)
    # a preview builds nothing (buildOnPreview is off), so it needs nothing
    registrations, _ = capture(program, preview=True)
    assert any(r.type == "docker-build:index:Image" for r in registrations)
    monkeypatch.setenv(NO_DEFAULT_ATTESTATIONS, "1")
    registrations, _ = capture(program, preview=False)
    assert any(r.type == "docker-build:index:Image" for r in registrations)


def test_attestation_switch_reads_as_buildx_parses_it():
    assert all(single_manifest_builds({NO_DEFAULT_ATTESTATIONS: v}) for v in ("1", "true", "TRUE", "t"))
    assert not any(single_manifest_builds({NO_DEFAULT_ATTESTATIONS: v}) for v in ("0", "false", "", "yes"))
    assert not single_manifest_builds({})


def test_canary_and_cpu_builds_share_the_repository(build):
    built = build(
        lambda: ModelImage(
            "chat",
            image_args(
                version="2.4.0",
                image={"context": "models/chat"},
                canary={"version": "2.5.0", "weight": 10},
                cpu_image={"context": "models/chat", "dockerfile": "Dockerfile.cpu"},
                build_canary=True,
                build_cpu_image=True,
            ),
        )
    )
    names = ("chat-image-2.4.0", "chat-image-2.5.0", "chat-cpu-image-2.4.0")
    tags = {n: built.inputs(n)["tags"][0].rsplit(":", 1)[1] for n in names}
    serving_fp = tags["chat-image-2.4.0"].split("-", 1)[1]
    assert tags["chat-image-2.5.0"] == f"2.5.0-{serving_fp}"  # the same context: the version tells them apart
    assert tags["chat-cpu-image-2.4.0"].startswith("2.4.0-") and not tags["chat-cpu-image-2.4.0"].endswith(serving_fp)
    assert built.inputs("chat-cpu-image-2.4.0")["dockerfile"]["location"] == "models/chat/Dockerfile.cpu"
    assert len(built.of_type("Repository")) == 1
    assert UNKNOWN not in json.dumps(built.inputs("chat-image-2.4.0"))


def test_built_images_are_consumed_as_repository_at_digest():
    from components.images import by_digest, repository_of

    assert repository_of("host:5000/team/model:1.0@sha256:" + "a" * 64) == "host:5000/team/model"
    assert repository_of("nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9") == "nvcr.io/nvidia/k8s/dcgm-exporter"
    assert repository_of("busybox") == "busybox"
    assert by_digest("r.example/m", "sha256:" + "c" * 64) == "r.example/m@sha256:" + "c" * 64


def test_tags_follow_the_build_inputs_not_the_checkout(tmp_path):
    from components.images import build_fingerprint

    context = tmp_path / "model"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (context / "server.py").write_text("print('v1')\n")
    (context / ".git").mkdir()
    (context / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    base = build_fingerprint(str(context), "Dockerfile", {"A": "1"}, "linux/amd64", None)
    assert base is not None and len(base) == 12
    # the same inputs: the same tag (a merge touching other files does not rebuild or roll out this model)
    (context / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    assert build_fingerprint(str(context), "Dockerfile", {"A": "1"}, "linux/amd64", None) == base
    # any input that changes the image: a new tag (an IMMUTABLE repository refuses a push under an old one)
    changed = {
        build_fingerprint(str(context), "Dockerfile", {"A": "2"}, "linux/amd64", None),
        build_fingerprint(str(context), "Dockerfile", {"A": "1"}, "linux/arm64", None),
        build_fingerprint(str(context), "Dockerfile", {"A": "1"}, "linux/amd64", "serve"),
    }
    (context / "server.py").write_text("print('v2')\n")
    changed.add(build_fingerprint(str(context), "Dockerfile", {"A": "1"}, "linux/amd64", None))
    assert base not in changed and len(changed) == 4
    assert build_fingerprint(str(tmp_path / "absent"), "Dockerfile", {}, "linux/amd64", None) is None


def _account_holding(monkeypatch, repository: str, tags: dict[str, str]) -> None:
    """The offline account, with `repository` holding `tags` (tag -> digest), as ECR's list calls answer."""
    answer = OfflineMocks.call

    def holding(self, args):
        if args.token == "aws:ecr/getRepositories:getRepositories":
            return {"names": [repository], "id": self.region}
        if args.token == "aws:ecr/getImages:getImages":
            assert args.args["repositoryName"] == repository
            ids = [{"imageTag": tag, "imageDigest": digest} for tag, digest in tags.items()]
            return {"imageIds": [*ids, {"imageDigest": "sha256:" + "0" * 64}], "repositoryName": repository}
        return answer(self, args)

    monkeypatch.setattr(OfflineMocks, "call", holding)


def test_a_tag_the_repository_holds_is_never_pushed_again_and_its_digest_is_served(build, monkeypatch):
    """A roll-back or a reverted commit reapplies a version whose tag ECR already holds. ECR refuses any push to an
    existing immutable tag, identical bytes included (ImageTagAlreadyExistsException; aws/aws-sdk#750,
    aws/containers-roadmap#2380): the image is not pushed, and consumers get the digest the repository has."""
    from components.images import build_fingerprint

    fingerprint = build_fingerprint("models/sentiment", "Dockerfile", {}, "linux/amd64", None)
    held = "sha256:" + "d" * 64
    _account_holding(monkeypatch, "m/chat", {f"2.4.0-{fingerprint}": held})
    refs: dict[str, str] = {}

    def program():
        image = ModelImage("chat", image_args(version="2.4.0", image={"context": "models/sentiment"}))
        image.image_ref.apply(lambda v: refs.setdefault("serving", v))

    built = build(program)
    assert built.inputs("chat-image-2.4.0")["push"] is False
    assert refs["serving"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/m/chat@{held}"


def test_a_new_version_is_pushed_beside_the_tags_the_repository_holds(build, monkeypatch):
    _account_holding(monkeypatch, "m/chat", {"2.3.0-aaaaaaaaaaaa": "sha256:" + "e" * 64})
    built = build(lambda: ModelImage("chat", image_args(version="2.4.0", image={"context": "models/sentiment"})))
    assert built.inputs("chat-image-2.4.0")["push"] is True


def test_one_image_resource_per_version_so_promotion_moves_a_reference(build):
    """The canary's image at 2.5.0 and the promoted stable image at 2.5.0 are one resource (`chat-image-2.5.0`):
    promotion neither rebuilds nor pushes. Each keeps its name of before as an alias, and outlives its resource:
    pulumi-docker-build deletes the tags it pushed when an Image is deleted (its Image docs, "Tag deletion and
    refreshes"), which would take the roll-back target of a version bump with it."""

    def with_canary():
        ModelImage(
            "chat",
            image_args(
                version="2.4.0",
                image={"context": "models/sentiment"},
                canary={"version": "2.5.0", "weight": 10},
                build_canary=True,
            ),
        )

    canary_phase = build(with_canary)
    promoted = build(lambda: ModelImage("chat", image_args(version="2.5.0", image={"context": "models/sentiment"})))
    assert canary_phase.inputs("chat-image-2.5.0") == promoted.inputs("chat-image-2.5.0")
    images = [s for s in canary_phase.steps if s["newState"]["type"] == "docker-build:index:Image"]
    for step in images:
        assert step["newState"]["retainOnDelete"] is True, step["urn"]
    aliases = {s["urn"].rsplit("::", 1)[-1]: s for s in images}
    assert set(aliases) == {"chat-image-2.4.0", "chat-image-2.5.0"}


def test_a_preview_of_a_missing_context_warns_and_names_the_tag_for_what_it_is(build):
    built = build(lambda: ModelImage("chat", image_args(version="2.4.0", image={"context": "models/absent"})))
    assert built.inputs("chat-image-2.4.0")["tags"][0].endswith(":2.4.0-no-context")
    assert any("models/absent" in w and "`up` will stop here" in w for w in built.warnings), built.warnings


def test_up_refuses_a_build_whose_context_is_missing(monkeypatch):
    monkeypatch.setenv(NO_DEFAULT_ATTESTATIONS, "1")

    def program():
        ModelImage("chat", image_args(version="2.4.0", image={"context": "models/absent"}))

    with pytest.raises(ProgramError, match=r"build context 'models/absent' of chat-image 2.4.0 is not there"):
        capture(program, preview=False)


def test_what_dockerignore_leaves_out_does_not_change_the_tag(tmp_path):
    """A file the build never sees cannot change the image: .dockerignore is read as Docker reads it
    (https://docs.docker.com/build/concepts/context/#dockerignore-files; moby/patternmatcher: last match wins, `**`
    spans directories, a directory's pattern covers what is under it, `!` re-includes, the Dockerfile is always sent)."""
    from components.images import build_fingerprint, dockerignore_patterns, ignored_by_docker

    context = tmp_path / "model"
    (context / "notebooks" / "deep").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY server.py .\n")
    (context / "server.py").write_text("print('v1')\n")
    (context / "notebooks" / "deep" / "scratch.ipynb").write_text("{}")
    (context / "notes.md").write_text("draft\n")
    (context / "keep.md").write_text("shipped\n")
    (context / ".dockerignore").write_text("# scratch work\n/notebooks\n*.md\n!keep.md\n  **/*.tmp  \nDockerfile\n")

    def tag():
        return build_fingerprint(str(context), "Dockerfile", {}, "linux/amd64", None)

    base = tag()
    for ignored in ("notebooks/deep/scratch.ipynb", "notes.md"):
        (context / ignored).write_text("changed")
        assert tag() == base, ignored
    (context / "notebooks" / "x.tmp").write_text("t")
    assert tag() == base
    for seen in ("keep.md", "server.py", "Dockerfile"):
        (context / seen).write_text("changed " + seen)
        assert tag() != base, seen
        base = tag()
    patterns = dockerignore_patterns(context)
    assert ignored_by_docker("a/b/c.tmp", patterns) and ignored_by_docker("c.tmp", patterns)
    assert not ignored_by_docker("keep.md", patterns) and not ignored_by_docker("server.py", patterns)


@pytest.mark.parametrize("protect", [True, False])
def test_a_repository_the_stack_may_delete_goes_with_its_images(build, protect):
    """Images outlive their resources (retainOnDelete, so that a roll-back finds its image): ECR then refuses to
    delete a repository that still holds them (RepositoryNotEmptyException), which broke `pulumi destroy` of dev in
    the real-engine tier. A repository the stack may delete is deleted with its images; a protected one (prod's)
    never is."""
    args = image_args(version="1.0.0", image={"context": "models/sentiment"})
    args["protect"] = protect
    repo = build(lambda: ModelImage("chat", args)).named("chat-repo")
    assert repo["inputs"]["forceDelete"] is (not protect)
    assert repo.get("protect", False) is protect
