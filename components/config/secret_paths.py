"""Where a stack file's `secure:` values may sit, and keeping their text out of every message."""

from typing import Any

from .base import KUBECONFIG_SECRET_KEY, key_path

SecretPath = tuple[str | int, ...]
"""Where a `secure:` value sits under the namespace: ("models", "chat", "env", "HF_TOKEN")."""

_SECRET_HOMES: tuple[tuple[str | None, ...], ...] = (
    ("models", None, "env", None),
    ("models", None, "serverless", "samplePayload"),
    (KUBECONFIG_SECRET_KEY,),
)
"""Where a secret stays secret wherever it lands: a model's env values (a Kubernetes Secret the pods read by
reference, a secret Lambda environment), its smoke-test payload (sent by `modelops smoke` only, never a
resource input) and the kubeconfig (a secret provider input). None matches any name; deeper paths follow."""

_WHY_NOT_SECRET = {
    "args": (
        "container args are part of the Deployment's spec, stored and shown in clear; put the value in env (a "
        "Kubernetes Secret) and refer to it as $(NAME) in args, which Kubernetes expands from the container's "
        "environment (kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/)"
    ),
    "buildArgs": (
        "build arguments stay in the image's history and metadata, readable by anyone who can pull it "
        "(docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/); give the build a secret mount instead"
    ),
    "hostname": "a hostname is public (DNS, certificate logs) and is written in clear into routes and endpoints",
}


def secret_paths_in(value: Any, path: SecretPath = ()) -> list[SecretPath]:
    """The paths of the `secure:` values in a stack file's value (the CLI decrypts each, wherever it is)."""
    if isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str):
        return [path]  # the CLI's isSecureValue: one key, `secure`, holding a string
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in secret_paths_in(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in secret_paths_in(v, (*path, i))]
    return []


def _secret_may_be_at(path: SecretPath) -> bool:
    return any(
        len(path) >= len(home) and all(h is None or h == p for h, p in zip(home, path, strict=False))
        for home in _SECRET_HOMES
    )


def secret_path_problems(paths: list[SecretPath]) -> list[str]:
    """A secret anywhere it would be written in clear is refused (never quoted): the message says where, why
    and what to do instead."""
    problems = []
    for path in paths:
        if _secret_may_be_at(path):
            continue
        field = next((str(p) for p in reversed(path) if str(p) in _WHY_NOT_SECRET), None)
        why = _WHY_NOT_SECRET.get(field or "") or (
            "only models.<name>.env values, serverless.samplePayload and kubeconfig stay secret where they land; "
            "this value would be written in clear into resource names, labels or inputs"
        )
        problems.append(f"{key_path(path)}: cannot be a secret: {why}")
    return problems


def secret_texts(raw: dict[str, Any], paths: list[SecretPath] | None, secret_keys: frozenset[str]) -> set[str]:
    """The text of every secret value, to keep out of messages: the values at `paths`; for a secret key whose
    secret's place is not known (no stack file to read it from), every text in that key."""
    texts: set[str] = set()
    for path in paths or []:
        texts |= _texts(_value_at(raw, path))
    known = {path[0] for path in paths or []}
    for key in secret_keys - known if paths is not None else secret_keys:
        texts |= {t for t in _texts(raw.get(key)) if len(t) >= 4}
    return {t for t in texts if t}


def _value_at(value: Any, path: SecretPath) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return None
    return value


def _texts(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {t for v in value.values() for t in _texts(v)}
    if isinstance(value, list):
        return {t for v in value for t in _texts(v)}
    return {str(value)} if isinstance(value, int | float) and not isinstance(value, bool) else set()


def without_secrets(problems: list[str], texts: set[str]) -> list[str]:
    """Messages quote values (`'x' is not a CIDR block`): a secret's text never reaches one."""
    for text in sorted(texts, key=len, reverse=True):
        problems = [p.replace(text, "[secret]") for p in problems]
    return problems
