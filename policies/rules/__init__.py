"""The modelops policy rules, by subject. Importing this package registers every rule in `RULES`."""

from . import aws, gpu, k8s_stack, k8s_workloads  # noqa: F401  (each module registers its rules)
from .framework import RULES, Rule, StackResource

__all__ = ["RULES", "Rule", "StackResource"]
