"""Where images come from and go: the stack's ECR repositories and a model's image (a build or a pre-built
reference)."""

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from .base import ConfigModel
from .enums import Platform

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<domain>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?)"
    rf"/(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@sha256:[0-9a-f]{{64}})?",
    re.ASCII,  # the grammar's `\w` is ASCII (Go's regexp): `tág` is no tag
)
"""The distribution reference grammar (github.com/distribution/reference), with the registry required."""


class RegistryConfig(ConfigModel):
    repository_prefix: str = Field(pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    """ECR repositories are named `<prefix>/<model>`."""
    allowed_registries: list[str] = []
    """Registries workloads may pull from besides this account's ECR (prefixes ending in `/`)."""
    images_to_keep: int = Field(default=20, ge=1, le=1000)
    build_on_preview: bool = False
    """Build images during `pulumi preview` too. Off by default: a preview then needs no BuildKit builder
    and no Docker engine (PR previews run without either), and shows the images' digests as unknown."""

    @field_validator("allowed_registries")
    @classmethod
    def _trailing_slash(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not prefix.endswith("/"):
                raise ValueError(f"{prefix!r} must end with '/' so that a prefix cannot match another registry")
        return value


class ImageConfig(ConfigModel):
    """Either a build (context + Dockerfile) or a pre-built reference."""

    context: str | None = None
    dockerfile: str = "Dockerfile"
    platform: Platform = Platform.LINUX_AMD64
    build_args: dict[str, str] = {}
    target: str | None = None
    ref: str | None = None
    """A pre-built image, `registry/repository[:tag][@sha256:digest]`; a tag is resolved to its digest at
    deploy time."""

    @field_validator("ref")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _IMAGE_REFERENCE.fullmatch(value)
        if not match:
            raise ValueError(
                f"{value!r} is not an image reference: registry/repository[:tag][@sha256:<64 hex>], "
                "with a lower-case repository path"
            )
        domain = match["domain"]
        if "." not in domain and ":" not in domain and domain != "localhost":
            raise ValueError(
                f"{value!r} names no registry ({domain!r} would be read as a Docker Hub path); "
                "give the registry host"
            )
        if len(f"{domain}/{match['path']}") > 255:
            raise ValueError("the repository name is longer than 255 characters")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.context is None) == (self.ref is None):
            raise ValueError("set exactly one of context (build) or ref (pre-built image)")
        return self
