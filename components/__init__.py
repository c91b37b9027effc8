"""Reusable Pulumi components of modelops: one ComponentResource per module.

The re-exports load their module on first use (PEP 562): the schema and catalogue modules, which
`modelops diff` or `check --plan` need, then do not pull in the Kubernetes and AWS SDKs.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers and editors see the real classes; at run time they load on first use
    from .gateway_fallback import GatewayFallback, GatewayFallbackArgs
    from .gpu_pool import GpuNodePool, GpuNodePoolArgs
    from .model_image import ModelImage, ModelImageArgs
    from .model_service import ModelService, ModelServiceArgs
    from .serverless_fallback import ServerlessFallback, ServerlessFallbackArgs

_MODULE_OF = {
    "GatewayFallback": "gateway_fallback",
    "GatewayFallbackArgs": "gateway_fallback",
    "GpuNodePool": "gpu_pool",
    "GpuNodePoolArgs": "gpu_pool",
    "ModelImage": "model_image",
    "ModelImageArgs": "model_image",
    "ModelService": "model_service",
    "ModelServiceArgs": "model_service",
    "ServerlessFallback": "serverless_fallback",
    "ServerlessFallbackArgs": "serverless_fallback",
}

__all__ = [
    "GatewayFallback",
    "GatewayFallbackArgs",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "ModelImage",
    "ModelImageArgs",
    "ModelService",
    "ModelServiceArgs",
    "ServerlessFallback",
    "ServerlessFallbackArgs",
]


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
