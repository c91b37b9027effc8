"""The analysis verbs: check, diff, comment, render, cost, smoke."""

from __future__ import annotations


def register(verb) -> None:
    return None
