"""The schema's choices.

They are string enums, not Literals: the component provider's schema analyzer (which publishes the components to
other languages) understands enums, and a StrEnum compares and prints as its value.
"""

from enum import StrEnum


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class CapacityType(StrEnum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


class FallbackMode(StrEnum):
    NONE = "none"
    STANDBY = "standby"
    AUTO = "auto"
    ONLY = "only"


class ArtifactAccess(StrEnum):
    COPY = "copy"
    MOUNT = "mount"


class WeightsSignature(StrEnum):
    KEY = "key"


class Placement(StrEnum):
    GPU = "gpu"
    SERVERLESS = "serverless"


class AmiFamily(StrEnum):
    BOTTLEROCKET = "bottlerocket"
    AL2023 = "al2023"


class Architecture(StrEnum):
    AMD64 = "amd64"
    ARM64 = "arm64"


class InstanceStorePolicy(StrEnum):
    RAID0 = "RAID0"


class ConsolidationPolicy(StrEnum):
    WHEN_EMPTY = "WhenEmpty"
    WHEN_EMPTY_OR_UNDERUTILIZED = "WhenEmptyOrUnderutilized"


class Platform(StrEnum):
    LINUX_AMD64 = "linux/amd64"
    LINUX_ARM64 = "linux/arm64"
