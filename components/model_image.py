"""ModelImage: a model's ECR repository and its images, each pinned by digest.

Creates:
- when anything is built: an ECR repository (immutable tags except the build-cache tags, scan on
  push, KMS encryption) and a lifecycle policy keeping the last N images;
- per version built (the serving image and a canary share one per version, so promoting a canary moves a
  reference and builds nothing; a CPU variant for Lambda has its own) a `docker-build` Image pushed there
  with ECR credentials that stay secret, its BuildKit layer cache kept under the `buildcache-serving` (or
  `buildcache-cpu`) tag of the same repository. A tag the repository already holds (an earlier version
  reapplied: a roll-back, a reverted commit) is never pushed again, which ECR's immutability would refuse
  (ImageTagAlreadyExistsException, identical bytes included: aws/containers-roadmap#2380): its digest is read
  from the repository and served. (The Image resource of such a version is declared with `push` off: the
  provider cannot adopt an image it did not push, so it builds it once more and keeps it local.) Images
  outlive their resources (retainOnDelete): the lifecycle policy, not a deploy, removes old versions, so a
  roll-back always finds its image;
- for a pre-built reference, nothing: no build and no repository (the reference lives in a registry
  this stack does not own; a lifecycle rule of ours could expire the pinned digest). It is pinned by
  digest, a tag read from its registry with the registry provider the caller passes.
"""

import json
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from .common import as_model, type_token
from .config import ImageConfig, ModelConfig, RegistryConfig
from .images import build_fingerprint, by_digest, pinned_image, require_single_manifest_builds

CACHE_TAG_PREFIX = "buildcache-"
"""Tags under this prefix hold BuildKit's layer cache and are the repository's only mutable tags: a cache
must be overwritten by every build, and a versioned image tag never may. (Inline cache metadata read back
from the tag being built, as before, found nothing: that tag never exists before its own build.)"""


class ModelImageArgs(TypedDict):
    """A model's images: the model and registry as the stack schema declares them, and what the composition
    resolves (which tracks and platforms it runs on, whether its repository is protected)."""

    model: ModelConfig
    """The model: its version and `image`, its canary's version and image, its `cpuImage`."""
    registry: RegistryConfig
    """The repository prefix (the repository is `<prefix>/<component name>`), images to keep, buildOnPreview."""
    build_canary: bool
    """Build the canary's image (the model runs on Kubernetes with a canary)."""
    build_cpu_image: bool
    """Build `cpuImage` (the model runs on Lambda and has one)."""
    protect: bool
    """Protect the repository (and so its images) from deletion."""
    tags: NotRequired[dict[str, str]]
    """AWS tags."""
    registry_username: NotRequired[pulumi.Input[str]]
    """ECR credentials shared by the stack's images (one token per deploy); fetched here when absent."""
    registry_password: NotRequired[pulumi.Input[str]]
    """Kept secret either way."""


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
        self._name = name
        # Hosted for another language, the component receives plain dicts: the schema's models validate them.
        model = as_model(ModelConfig, args["model"])
        self._registry_config = as_model(RegistryConfig, args["registry"])
        self._credentials: docker_build.RegistryArgs | None = None
        canary = model.canary if args["build_canary"] else None
        cpu_image = model.cpu_image if args["build_cpu_image"] else None
        wanted = [model.image, *([canary.image or model.image] if canary else []), *([cpu_image] if cpu_image else [])]
        builds = [image for image in wanted if image.ref is None]
        if builds and (self._registry_config.build_on_preview or not pulumi.runtime.is_dry_run()):
            require_single_manifest_builds()  # before any child: nothing is pushed in a form Lambda refuses
        self.repository = self._repository(name) if builds else None
        self._pushed = self._pushed_tags(name) if builds else {}
        self.image_ref = self._image(f"{name}-image", model.image, model.version, "serving")
        self.canary_image_ref = (
            self._image(f"{name}-image", canary.image or model.image, canary.version, "canary")
            if canary
            else pulumi.Output.from_input(None)
        )
        self.cpu_image_ref = (
            self._image(f"{name}-cpu-image", cpu_image, model.version, "cpu") if cpu_image else self.image_ref
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
        repository = aws.ecr.Repository(
            f"{name}-repo",
            name=f"{self._registry_config.repository_prefix}/{name}",
            image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
            image_tag_mutability_exclusion_filters=[{"filter": f"{CACHE_TAG_PREFIX}*", "filter_type": "WILDCARD"}],
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],
            # A repository the stack may delete goes with its images (which outlive their resources); one it protects
            # (prod's) never goes. Without it, destroying a stack or removing a model fails on a non-empty repository.
            force_delete=not self._args["protect"],
            tags=self._args.get("tags", {}),
            opts=pulumi.ResourceOptions(parent=self, protect=self._args["protect"]),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository.name,
            policy=json.dumps({"rules": lifecycle_rules(self._registry_config.images_to_keep)}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return repository

    def _pushed_tags(self, name: str) -> dict[str, str]:
        """Tag -> digest of what the repository already holds (read when the program runs, in previews too), or
        nothing while the repository does not exist yet. The offline engine's account is empty."""
        repository = f"{self._registry_config.repository_prefix}/{name}"
        opts = pulumi.InvokeOptions(parent=self)
        if repository not in aws.ecr.get_repositories(opts=opts).names:
            return {}
        images = aws.ecr.get_images(repository_name=repository, opts=opts).image_ids
        return {image.image_tag: image.image_digest for image in images if image.image_tag}

    def _registry(self) -> docker_build.RegistryArgs:
        if self._credentials is None:
            username, password = self._args.get("registry_username"), self._args.get("registry_password")
            if username is None or password is None:
                token = aws.ecr.get_authorization_token_output(
                    registry_id=self._built_repository().registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
                )
                username, password = token.user_name, token.password
            self._credentials = docker_build.RegistryArgs(
                address=self._built_repository().repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=username,
                password=pulumi.Output.secret(password),
            )
        return self._credentials

    def _built_repository(self) -> aws.ecr.Repository:
        assert self.repository is not None, "a build without a repository"
        return self.repository

    def _fingerprint(self, build: ImageConfig, what: str) -> str | None:
        """The build's fingerprint (`build_fingerprint`), or None when its context is missing: `up` stops there, a
        preview warns (a bare version tag would be pushed once and refused ever after)."""
        assert build.context is not None, "a fingerprint is taken of a build context"
        fingerprint = build_fingerprint(build.context, build.dockerfile, build.build_args, build.platform, build.target)
        if fingerprint is None:
            message = (
                f"the build context {build.context!r} of {what} is not there: images are tagged "
                "with a fingerprint of their context, and a bare version would be pushed once and refused ever after"
            )
            if not pulumi.runtime.is_dry_run():
                raise pulumi.RunError(message)
            pulumi.log.warn(message + " (`up` will stop here)", resource=self)
        return fingerprint

    def _image(self, name_prefix: str, build: ImageConfig, version: str, role: str) -> pulumi.Output[str]:
        if build.ref is not None:
            return pinned_image(build.ref, self)
        assert build.context is not None, "an image is built from a context or taken from a ref"
        repository = self._built_repository()
        fingerprint = self._fingerprint(build, f"{name_prefix} {version}")
        # the same inputs keep their tag (no rebuild, no roll-out); any change gets a new one
        image_tag = f"{version}-{fingerprint or 'no-context'}"
        pushed_digest = self._pushed.get(image_tag)
        tag = repository.repository_url.apply(lambda url: f"{url}:{image_tag}")
        cache_from, cache_to = _build_caches(repository, role)
        # One resource per version (and per role besides the shared serving/canary pair): its pre-version name,
        # by role, is its alias, so a stack deployed before keeps its images.
        old_name = f"{self._name}-canary-image" if role == "canary" else name_prefix
        image = docker_build.Image(
            f"{name_prefix}-{version}",
            context={"location": build.context},
            dockerfile={"location": f"{build.context}/{build.dockerfile}"},
            platforms=[docker_build.Platform(build.platform.value)],
            build_args=build.build_args,
            target=build.target,
            tags=[tag],
            labels={
                "org.opencontainers.image.version": version,
                **({"modelops/build-fingerprint": fingerprint} if fingerprint else {}),
            },
            # A tag already there is not pushed again (see the module docstring). Once pushed, `push` may read
            # False at the next run: that is the same image, not a change.
            push=pushed_digest is None,
            build_on_preview=self._registry_config.build_on_preview,
            registries=[self._registry()],
            cache_from=cache_from,
            cache_to=cache_to,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[repository],
                retain_on_delete=True,
                ignore_changes=["push"],
                aliases=[pulumi.Alias(name=old_name)],
            ),
        )
        # `ref` is `repo:tag@sha256:…`, which Lambda refuses: consumers get the repository and digest.
        digest = pulumi.Output.from_input(pushed_digest) if pushed_digest else image.digest
        return pulumi.Output.all(repository.repository_url, digest).apply(lambda parts: by_digest(parts[0], parts[1]))


def _build_caches(
    repository: aws.ecr.Repository, role: str
) -> tuple[list[docker_build.CacheFromArgsDict], list[docker_build.CacheToArgsDict]]:
    """Where a build of `role` reads and writes its layer cache. A canary builds what the serving image of its version
    will be, so both read and write one cache: the resource they share must not change when the canary is promoted (a
    change would push its tag again). A CPU build keeps its own cache and starts from the serving build's layers."""
    cache_role = "cpu" if role == "cpu" else "serving"
    caches = [cache_role] if cache_role == "serving" else [cache_role, "serving"]
    cache_refs = {r: repository.repository_url.apply(_cache_ref(r)) for r in caches}
    cache_from: list[docker_build.CacheFromArgsDict] = [{"registry": {"ref": ref}} for ref in cache_refs.values()]
    # ECR takes a registry cache only as an OCI image manifest (BuildKit's default manifest list is
    # refused); a cache that cannot be written must not fail the deploy it would only have sped up.
    cache_to: list[docker_build.CacheToArgsDict] = [
        {
            "registry": {
                "ref": cache_refs[cache_role],
                "mode": docker_build.CacheMode.MAX,
                "image_manifest": True,
                "oci_media_types": True,
                "ignore_error": True,
            }
        }
    ]
    return cache_from, cache_to


def _cache_ref(role: str):
    """The repository URL -> the tag holding one build role's layer cache."""
    return lambda url: f"{url}:{CACHE_TAG_PREFIX}{role}"


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
