"""The modelops policy rules, by subject, each declared with what it implements (modelops_rules/standards.py).

Importing the package declares every rule in `RULES`, in the order the pack registers them: the pack
(policies/__main__.py) and the `modelops` CLI both read that list.
"""

from . import aws, gpu, k8s_stack, k8s_workloads  # noqa: F401  (each module declares its rules)
from .framework import RULES, Rule, StackResource

__all__ = ["RULES", "Rule", "StackResource"]
