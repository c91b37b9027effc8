"""Reading what a verb is given: regular files only, and bounded (composition/project_files.py, the program's own
reader). Its own module, so the plan, stack-file and kubeconfig readers share it without importing the verbs'
common module, which plans stacks through them."""

from composition.project_files import read_regular_file

__all__ = ["read_regular_file"]
