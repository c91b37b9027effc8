"""Reusable Pulumi components of modelops: one ComponentResource per module.

The re-exports load their module on first use (PEP 562): the schema and catalogue modules, which
`modelops diff` or `check --plan` need, then do not pull in the Kubernetes and AWS SDKs.
"""

from importlib import import_module

_MODULE_OF = {
    "GpuNodePool": "gpu_pool",
    "GpuNodePoolArgs": "gpu_pool",
    "ImageBuildArgs": "model_image",
    "ModelImage": "model_image",
    "ModelImageArgs": "model_image",
    "ModelService": "model_service",
    "ModelServiceArgs": "model_service",
    "ServerlessFallback": "serverless_fallback",
    "ServerlessFallbackArgs": "serverless_fallback",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
