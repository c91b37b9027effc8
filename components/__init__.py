"""Reusable Pulumi components of modelops: one ComponentResource per module."""

from .gpu_pool import GpuNodePool, GpuNodePoolArgs
from .model_image import ImageBuildArgs, ModelImage, ModelImageArgs
from .model_service import ModelService, ModelServiceArgs
from .serverless_fallback import ServerlessFallback, ServerlessFallbackArgs

__all__ = [
    "GpuNodePool", "GpuNodePoolArgs",
    "ImageBuildArgs", "ModelImage", "ModelImageArgs",
    "ModelService", "ModelServiceArgs",
    "ServerlessFallback", "ServerlessFallbackArgs",
]
