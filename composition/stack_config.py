"""Reading the running stack's `modelops:` config, as the Pulumi CLI or the offline engine hands it over, and
where its stack file holds `secure:` values; components/config validates what is read here."""

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

from components.config import (
    KUBECONFIG_SECRET_KEY,
    NAMESPACE,
    SECRET_SET,
    SecretPath,
    StackConfig,
    StackConfigError,
    parse_stack_config,
    secret_paths_in,
)
from components.weights_manifest import WeightsManifest
from composition import stack_yaml
from composition.model_registry import RegisteredTracks, registry_credentials, resolve_stack_models
from composition.weights_lock import lock_path, read_weights_lock, stack_manifests
from composition.weights_signature import read_signing_keys


class LoadedStack(NamedTuple):
    config: StackConfig
    """Validated, with every registry URI resolved to its S3 prefix."""
    registered: dict[str, RegisteredTracks]
    """By model: what its registry URIs stood for at this run (none for models with S3 prefixes)."""
    weights: dict[str, dict[str, WeightsManifest]]
    """By model and track: the files its weights are pinned to (weights.lock.json or the registry's tag)."""


def load_stack() -> LoadedStack:
    """Read and validate the `modelops:` keys of the running stack (under the CLI or the offline engine), and
    resolve the registry URIs of its models (credentials from MLflow's own variables, `registry_credentials`)."""
    prefix = f"{NAMESPACE}:"
    raw: dict[str, Any] = {}
    for full_key, value in runtime_config.CONFIG.get().items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix) :]
        if key == KUBECONFIG_SECRET_KEY:
            raw[key] = SECRET_SET if runtime_config.is_config_secret(full_key) else value
            continue
        raw[key] = _program_value(value)
    secret_keys = frozenset(k for k in raw if runtime_config.is_config_secret(prefix + k))
    stack = pulumi.get_stack()
    secret_paths = _stack_file_secret_paths(stack, secret_keys)
    cfg = parse_stack_config(raw, stack, secret_paths, secret_keys)
    resolved, registered = resolve_stack_models(raw, cfg, registry_credentials(os.environ))
    if registered:
        try:  # validated again as resolved: the prefixes' rules, the canary's, the versions' length
            cfg = parse_stack_config(resolved, stack, secret_paths, secret_keys)
        except StackConfigError as exc:
            problems = [f"{problem} (with the registry URIs resolved)" for problem in exc.problems]
            raise StackConfigError(problems) from None
    # the lock and the trusted keys sit in the project directory, the program's working directory under the CLI
    # and offline alike
    project = Path.cwd()
    keys = read_signing_keys(cfg.security.model_signing_keys, project)
    return LoadedStack(cfg, registered, stack_manifests(cfg, registered, read_weights_lock(lock_path(project)), keys))


def _program_value(text: Any) -> Any:
    """A config value as the CLI hands it over: an object or a list as its JSON text, a scalar as its text (a
    string as written, a number or boolean as Go JSON). Only objects and lists are decoded: a scalar stays its
    text, so a quoted `costOwner: "123"` is the string it was written as (offline/stackfile.py reads the same)."""
    if isinstance(text, str) and text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _stack_file_secret_paths(stack: str, secret_keys: frozenset[str]) -> list[SecretPath] | None:
    """Where the stack file holds `secure:` values. The engine tells the program only that a whole key is secret
    (it decrypts values nested in an object and marks the key), so the place is read from the file the CLI
    read: `<stackConfigDir>/Pulumi.<stack>.yaml` in the project directory, the program's working directory.
    Paths of keys the engine does not mark secret are ignored (another file than the running config). None
    when the file cannot be read (config from an ESC environment): every text of a secret key is then kept
    out of messages, and a secret's place cannot be checked here (offline `modelops plan` checks it)."""
    if not secret_keys:
        return []  # nothing secret: nothing to place, and no file to read on every run
    try:
        project = stack_yaml.load(Path("Pulumi.yaml").read_text(encoding="utf-8"))
        directory = Path(str(project.get("stackConfigDir") or "."))
        config = stack_yaml.load((directory / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")).get("config") or {}
        items = list(config.items())
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    paths: list[SecretPath] = []
    for key, value in items:
        name = str(key).removeprefix(f"{NAMESPACE}:")
        if name in secret_keys and ":" not in name:
            paths += [(name, *path) for path in secret_paths_in(value)]
    return paths


def models_hold_secrets() -> bool:
    """Whether `modelops:models` carries a `secure:` value. The CLI decrypts values nested in an object and marks
    the whole key secret, so which value was secure is not known here: every model's `env` is then handled as
    secret (a Kubernetes Secret, a secret Lambda environment), never written in clear."""
    return runtime_config.is_config_secret(f"{NAMESPACE}:models")
