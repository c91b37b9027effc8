"""ModelImage: an immutable, scanned, encrypted repository and digest-pinned images."""

from __future__ import annotations

import json

from components import ImageBuildArgs, ModelImage, ModelImageArgs
from offline.plan import UNKNOWN

PINNED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/vision:1.8.1@sha256:" + "b" * 64


def test_repository_is_immutable_scanned_encrypted_and_pruned(build):
    built = build(lambda: ModelImage("chat", ModelImageArgs(
        repository_name="modelops/prod/chat", image=ImageBuildArgs(version="2.4.0", context="models/chat"),
        images_to_keep=30, protect=True)))
    repo = built.named("chat-repo")
    assert repo["protect"] is True
    inputs = repo["inputs"]
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert inputs["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    rule = json.loads(built.inputs("chat-lifecycle")["policy"])["rules"][0]
    assert rule["selection"]["countNumber"] == 30 and rule["action"] == {"type": "expire"}


def test_build_pushes_with_secret_ecr_credentials_and_versioned_tags(build):
    built = build(lambda: ModelImage("chat", ModelImageArgs(
        repository_name="modelops/prod/chat",
        image=ImageBuildArgs(version="2.4.0", context="models/chat", build_args={"BASE": "x"},
                             fingerprint="0123456789ab")))).inputs("chat-image")
    assert built["push"] is True
    assert built["tags"] == ["123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/prod/chat:2.4.0-0123456789ab"]
    assert built["labels"]["modelops/build-fingerprint"] == "0123456789ab"
    assert built["platforms"] == ["linux/amd64"] and built["buildArgs"] == {"BASE": "x"}
    registry = built["registries"][0]
    assert registry["password"] == "[secret]" and registry["username"] == "AWS"
    assert registry["address"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert built["cacheTo"] == [{"inline": {}}]
    # previews build nothing unless asked: no BuildKit builder is needed to preview a pull request
    assert built["buildOnPreview"] is False


def test_image_ref_is_pinned_by_digest_and_unknown_until_built(build):
    refs = {}

    def program():
        image = ModelImage("vision", ModelImageArgs(repository_name="m/vision",
                                                    image=ImageBuildArgs(version="1.8.1", ref=PINNED)))
        image.image_ref.apply(lambda v: refs.setdefault("prebuilt", v))
        tagged = ModelImage("tagged", ModelImageArgs(repository_name="m/tagged", image=ImageBuildArgs(
            version="1", ref="nvcr.io/nvidia/tritonserver:24.08-py3")))
        tagged.image_ref.apply(lambda v: refs.setdefault("tagged", v))

    built = build(program)
    # repo@digest, the one form Lambda and the kubelet both take (Lambda refuses repo:tag@digest)
    assert refs["prebuilt"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/m/vision@sha256:" + "b" * 64
    assert refs["tagged"].startswith("nvcr.io/nvidia/tritonserver@sha256:")
    assert not built.of_type("docker-build:index:Image")  # nothing to build for pre-built images


def test_canary_and_cpu_builds_share_the_repository(build):
    built = build(lambda: ModelImage("chat", ModelImageArgs(
        repository_name="m/chat", image=ImageBuildArgs(version="2.4.0", context="models/chat"),
        canary_image=ImageBuildArgs(version="2.5.0", context="models/chat"),
        cpu_image=ImageBuildArgs(version="2.4.0", context="models/chat", dockerfile="Dockerfile.cpu"))))
    tags = {n: built.inputs(n)["tags"][0].rsplit(":", 1)[1] for n in ("chat-image", "chat-canary-image", "chat-cpu-image")}
    assert tags == {"chat-image": "2.4.0", "chat-canary-image": "2.5.0", "chat-cpu-image": "2.4.0"}
    assert built.inputs("chat-cpu-image")["dockerfile"]["location"] == "models/chat/Dockerfile.cpu"
    assert len(built.of_type("Repository")) == 1
    assert UNKNOWN not in json.dumps(built.inputs("chat-image"))


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
    assert len(base) == 12
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
