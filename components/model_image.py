"""ModelImage: a model's ECR repository and its images, each pinned by digest.

Creates:
- when anything is built: an ECR repository (immutable tags except the build-cache tags, scan on
  push, KMS encryption) and a lifecycle policy keeping the last N images;
- per requested build (the serving image, a canary version, a CPU variant for Lambda) a
  `docker-build` Image pushed there with ECR credentials that stay secret, its BuildKit layer cache
  kept under its own `buildcache-<role>` tag of the same repository;
- for a pre-built reference, nothing: no build and no repository (the reference lives in a registry
  this stack does not own; a lifecycle rule of ours could expire the pinned digest). It is pinned by
  digest, a tag read from its registry with the registry provider the caller passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from .common import type_token
from .images import by_digest, pinned_image, require_single_manifest_builds

CACHE_TAG_PREFIX = "buildcache-"
"""Tags under this prefix hold BuildKit's layer cache and are the repository's only mutable tags: a cache
must be overwritten by every build, and a versioned image tag never may. (Inline cache metadata read back
from the tag being built, as before, found nothing: that tag never exists before its own build.)"""


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
    """A model's images. Secure defaults: image tags are immutable (a tag always names the same bytes;
    only `buildcache-*` cache tags move), images are scanned on push and encrypted with KMS; registry
    credentials are secrets. Builds produce single-platform image manifests (see `_image`)."""

    repository_url: pulumi.Output[str | None]
    """The ECR repository URL (None when nothing is built)."""
    repository_arn: pulumi.Output[str | None]
    """The ECR repository ARN (None when nothing is built)."""
    image_ref: pulumi.Output[str]
    """The serving image, `repo@sha256:…`."""
    canary_image_ref: pulumi.Output[str | None]
    """The canary image, pinned the same way, or None."""
    cpu_image_ref: pulumi.Output[str]
    """The image for the serverless fallback (the CPU build, else the serving image)."""

    def __init__(self, name: str, args: ModelImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("ModelImage"), name, None, opts)
        self._args = args
        self._credentials = None
        builds = [b for b in (args.image, args.canary_image, args.cpu_image) if b is not None and b.ref is None]
        if builds and (args.build_on_preview or not pulumi.runtime.is_dry_run()):
            require_single_manifest_builds()  # before any child: nothing is pushed in a form Lambda refuses
        self.repository = self._repository(name) if builds else None
        self.image_ref = self._image(f"{name}-image", args.image, "serving")
        self.canary_image_ref = (
            self._image(f"{name}-canary-image", args.canary_image, "canary")
            if args.canary_image
            else pulumi.Output.from_input(None)
        )
        self.cpu_image_ref = (
            self._image(f"{name}-cpu-image", args.cpu_image, "cpu") if args.cpu_image else self.image_ref
        )
        self.repository_url = self.repository.repository_url if self.repository else pulumi.Output.from_input(None)
        self.repository_arn = self.repository.arn if self.repository else pulumi.Output.from_input(None)
        self.register_outputs(
            {
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
                "image_ref": self.image_ref,
                "canary_image_ref": self.canary_image_ref,
                "cpu_image_ref": self.cpu_image_ref,
            }
        )

    def _repository(self, name: str) -> aws.ecr.Repository:
        args = self._args
        repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[{"filter": f"{CACHE_TAG_PREFIX}*", "filter_type": "WILDCARD"}],
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],
            force_delete=False,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=json.dumps({"rules": lifecycle_rules(args.images_to_keep)}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return repository

    def _registry(self) -> dict:
        if self._credentials is None:
            username, password = self._args.registry_username, self._args.registry_password
            if username is None or password is None:
                token = aws.ecr.get_authorization_token_output(
                    registry_id=self._built_repository().registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
                )
                username, password = token.user_name, token.password
            self._credentials = {
                "address": self._built_repository().repository_url.apply(lambda url: url.split("/", 1)[0]),
                "username": username,
                "password": pulumi.Output.secret(password),
            }
        return self._credentials

    def _built_repository(self) -> aws.ecr.Repository:
        assert self.repository is not None, "a build without a repository"
        return self.repository

    def _image(self, resource_name: str, build: ImageBuildArgs, role: str) -> pulumi.Output[str]:
        if build.ref is not None:
            return pinned_image(build.ref, self)
        repository = self._built_repository()
        tag = repository.repository_url.apply(lambda url: f"{url}:{build.tag}")
        # a canary or CPU build starts from the serving build's layers
        caches = [role] if role == "serving" else [role, "serving"]
        cache_refs = {
            r: repository.repository_url.apply(lambda url, r=r: f"{url}:{CACHE_TAG_PREFIX}{r}") for r in caches
        }
        image = docker_build.Image(
            resource_name,
            context={"location": build.context},
            dockerfile={"location": f"{build.context}/{build.dockerfile}"},
            platforms=[build.platform],
            build_args=build.build_args,
            target=build.target,
            tags=[tag],
            labels={
                "org.opencontainers.image.version": build.version,
                **({"modelops/build-fingerprint": build.fingerprint} if build.fingerprint else {}),
            },
            push=True,
            build_on_preview=self._args.build_on_preview,
            registries=[self._registry()],
            cache_from=[{"registry": {"ref": ref}} for ref in cache_refs.values()],
            # ECR takes a registry cache only as an OCI image manifest (BuildKit's default manifest list is
            # refused); a cache that cannot be written must not fail the deploy it would only have sped up.
            cache_to=[
                {
                    "registry": {
                        "ref": cache_refs[role],
                        "mode": "max",
                        "image_manifest": True,
                        "oci_media_types": True,
                        "ignore_error": True,
                    }
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[repository]),
        )
        # `ref` is `repo:tag@sha256:…`, which Lambda refuses: consumers get the repository and digest.
        return pulumi.Output.all(repository.repository_url, image.digest).apply(
            lambda parts: by_digest(parts[0], parts[1])
        )


def lifecycle_rules(images_to_keep: int) -> list[dict]:
    """Expire all but the last `images_to_keep` versioned images; keep the build caches, whose superseded
    manifests (untagged when a build moves the cache tag) go after a day. ECR applies the first rule an
    image matches, by priority, so the cache tags are never counted among the versions."""
    return [
        {
            "rulePriority": 1,
            "description": "keep the build caches",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": [f"{CACHE_TAG_PREFIX}*"],
                "countType": "imageCountMoreThan",
                "countNumber": 3,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "superseded build caches",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": f"keep the last {images_to_keep} images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": images_to_keep,
            },
            "action": {"type": "expire"},
        },
    ]
