"""ModelImage: a model's ECR repository and its images, each pinned by digest.

Creates:
- an ECR repository (immutable tags, scan on push, KMS encryption) and a lifecycle policy keeping
  the last N images;
- per requested build (the serving image, a canary version, a CPU variant for Lambda) a
  `docker-build` Image pushed there with ECR credentials that stay secret;
- or, for a pre-built reference, no build: the reference is pinned by digest from the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from .common import type_token
from .images import by_digest, pinned_image


@dataclass(frozen=True)
class ImageBuildArgs:
    """One image to build from a context, or to take as it is from `ref`."""

    version: str
    """Image tag: the model version (plus the build fingerprint when the context is there to hash)."""
    context: str | None = None
    """Build context directory."""
    dockerfile: str = "Dockerfile"
    """Dockerfile, relative to the context."""
    platform: str = "linux/amd64"
    """Target platform."""
    build_args: dict[str, str] = field(default_factory=dict)
    """Docker build arguments."""
    target: str | None = None
    """Multi-stage target."""
    ref: str | None = None
    """A pre-built image instead of a build."""
    fingerprint: str | None = None
    """A hash of the build's inputs (components.images.build_fingerprint), appended to the tag."""

    @property
    def tag(self) -> str:
        return f"{self.version}-{self.fingerprint}" if self.fingerprint else self.version


@dataclass(frozen=True)
class ModelImageArgs:
    repository_name: str
    """ECR repository name (`<prefix>/<model>`)."""
    image: ImageBuildArgs
    """The serving image."""
    canary_image: ImageBuildArgs | None = None
    """The canary version's image."""
    cpu_image: ImageBuildArgs | None = None
    """A CPU build for the serverless fallback."""
    images_to_keep: int = 20
    """Lifecycle policy: older images are expired."""
    protect: bool = False
    """Protect the repository (and so its images) from deletion."""
    tags: dict[str, str] = field(default_factory=dict)
    """AWS tags."""
    registry_username: pulumi.Input[str] | None = None
    """ECR credentials shared by the stack's images (one token per deploy); fetched here when None."""
    registry_password: pulumi.Input[str] | None = None
    """Kept secret either way."""
    build_on_preview: bool = False
    """Build during previews too (needs a BuildKit builder); off, previews show digests as unknown."""


class ModelImage(pulumi.ComponentResource):
    """A model's images. Secure defaults: tags are immutable (a tag always names the same bytes),
    images are scanned on push and encrypted with KMS; registry credentials are secrets."""

    repository_url: pulumi.Output[str]
    """The ECR repository URL."""
    repository_arn: pulumi.Output[str]
    """The ECR repository ARN (what a Lambda's pull permission names)."""
    image_ref: pulumi.Output[str]
    """The serving image, `repo@sha256:…`."""
    canary_image_ref: pulumi.Output[str | None]
    """The canary image, pinned the same way, or None."""
    cpu_image_ref: pulumi.Output[str]
    """The image for the serverless fallback (the CPU build, else the serving image)."""

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("ModelImage"), name, None, opts)
        self._args = args
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],
            force_delete=False,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps({"rules": [{
                "rulePriority": 1,
                "description": f"keep the last {args.images_to_keep} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                              "countNumber": args.images_to_keep},
                "action": {"type": "expire"},
            }]}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self._credentials = None
        self.image_ref = self._image(f"{name}-image", args.image)
        self.canary_image_ref = (self._image(f"{name}-canary-image", args.canary_image)
                                 if args.canary_image else pulumi.Output.from_input(None))
        self.cpu_image_ref = self._image(f"{name}-cpu-image", args.cpu_image) if args.cpu_image else self.image_ref
        self.repository_url = self.repository.repository_url
        self.repository_arn = self.repository.arn
        self.register_outputs({
            "repository_url": self.repository_url,
            "repository_arn": self.repository_arn,
            "image_ref": self.image_ref,
            "canary_image_ref": self.canary_image_ref,
            "cpu_image_ref": self.cpu_image_ref,
        })

    def _registry(self) -> dict:
        if self._credentials is None:
            username, password = self._args.registry_username, self._args.registry_password
            if username is None or password is None:
                token = aws.ecr.get_authorization_token_output(
                    registry_id=self.repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self))
                username, password = token.user_name, token.password
            self._credentials = {
                "address": self.repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                "username": username,
                "password": pulumi.Output.secret(password),
            }
        return self._credentials

    def _image(self, resource_name: str, build: ImageBuildArgs) -> pulumi.Output[str]:
        if build.ref is not None:
            return pinned_image(build.ref, self)
        tag = self.repository.repository_url.apply(lambda url: f"{url}:{build.tag}")
        image = docker_build.Image(
            resource_name,
            context={"location": build.context},
            dockerfile={"location": f"{build.context}/{build.dockerfile}"},
            platforms=[build.platform],
            build_args=build.build_args,
            target=build.target,
            tags=[tag],
            labels={"org.opencontainers.image.version": build.version,
                    **({"modelops/build-fingerprint": build.fingerprint} if build.fingerprint else {})},
            push=True,
            build_on_preview=self._args.build_on_preview,
            registries=[self._registry()],
            # Inline cache metadata travels inside the pushed image: it works with immutable tags,
            # where a shared mutable `buildcache` tag could not be overwritten.
            cache_from=[{"registry": {"ref": tag}}],
            cache_to=[{"inline": {}}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.repository]),
        )
        # `ref` is `repo:tag@sha256:…`, which Lambda refuses: consumers get the repository and digest.
        return pulumi.Output.all(self.repository.repository_url, image.digest).apply(
            lambda parts: by_digest(parts[0], parts[1]))
