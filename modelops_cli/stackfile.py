"""Reading a stack the way the Pulumi CLI does: project defaults from Pulumi.yaml, then the stack file.

The result is the flat `namespace:key -> string` config map the language host hands a program
(objects as JSON text), plus which keys are secret. `secure:` values become placeholders: the
offline engine never decrypts, and the plan shows them as `[secret]`.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import (
    NAMESPACE,
    SECRET_SET,
    SecretPath,
    StackConfig,
    StackConfigError,
    parse_stack_config,
    secret_paths_in,
)
from composition import stack_yaml

from .files import read_regular_file

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRET_PLACEHOLDER = "offline-secret-placeholder"


class StackNotFound(Exception):
    def __init__(self, stack: str, known: list[str]):
        self.stack = stack
        self.known = known
        super().__init__(f"no stack named {stack!r}; stacks: {', '.join(known) or 'none'}")


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    main: Path
    stack_dir: Path
    config_defaults: dict[str, Any] = field(default_factory=dict)

    def stacks(self) -> list[str]:
        return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in self.stack_dir.glob("Pulumi.*.yaml"))

    def stack_file(self, stack: str) -> Path:
        return self.stack_dir / f"Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class StackSettings:
    project: Project
    stack: str
    config: dict[str, str]
    """`namespace:key` -> value as the language host passes it (JSON text for objects)."""
    secret_keys: list[str]
    model: StackConfig
    """The validated `modelops:` schema."""


def stack_name_of(path: Path) -> str:
    """`Pulumi.<stack>.yaml` -> `<stack>`; any other file name is the stack name without suffix."""
    name = path.name
    if name.startswith("Pulumi.") and name.endswith((".yaml", ".yml")):
        return name[len("Pulumi.") :].rsplit(".", 1)[0]
    return path.stem


def load_project(root: Path = PROJECT_ROOT) -> Project:
    data = _read_yaml(root / "Pulumi.yaml")
    defaults = {}
    for key, spec in (data.get("config") or {}).items():
        full = key if ":" in key else f"{data['name']}:{key}"
        if isinstance(spec, dict) and ("default" in spec or "value" in spec):
            defaults[full] = spec.get("value", spec.get("default"))
        elif not isinstance(spec, dict):
            defaults[full] = spec
    return Project(
        root, data["name"], root / data.get("main", "__main__.py"), root / data.get("stackConfigDir", "."), defaults
    )


def load_stack(stack: str, project: Project | None = None, stack_file: Path | None = None) -> StackSettings:
    """Read and validate a stack. Raises StackNotFound or StackConfigError (one line per problem)."""
    project = project or load_project()
    path = stack_file or project.stack_file(stack)
    if not path.exists():
        raise StackNotFound(stack, project.stacks())
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise StackConfigError([f"{path.name}: expected a mapping with a `config:` key"])
    unknown_top = sorted(set(data) - {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"})
    if unknown_top:
        raise StackConfigError([f"{path.name}: {k}: unknown top-level key" for k in unknown_top])
    stack_config = data.get("config") or {}
    if not isinstance(stack_config, dict):
        raise StackConfigError([f"{path.name}: config: expected a mapping"])

    merged = {**project.config_defaults}
    for key, value in stack_config.items():
        full = key if ":" in key else f"{project.name}:{key}"
        merged[full] = value

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    raw: dict[str, Any] = {}
    secret_paths: list[SecretPath] = []
    for key, value in sorted(merged.items()):
        if key.startswith(f"{NAMESPACE}:"):
            secret_paths += [(key.split(":", 1)[1], *p) for p in secret_paths_in(value)]
        value = stack_yaml.as_cli_value(value)
        if _is_secure(value):
            secret_keys.append(key)
            config[key] = SECRET_PLACEHOLDER
        elif _has_secure(value):
            # The CLI decrypts `secure:` values nested in an object and makes the whole key secret.
            secret_keys.append(key)
            value = _placeholders(value)
            config[key] = json.dumps(value, sort_keys=True)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if key.startswith(f"{NAMESPACE}:"):
            # as the program reads it: a scalar as the CLI's text, an object as its value (load_stack_config)
            raw[key.split(":", 1)[1]] = (
                SECRET_SET
                if config[key] == SECRET_PLACEHOLDER
                else value
                if isinstance(value, dict | list)
                else config[key]
            )
    # where each secret sits: refused where it would be written in clear, and kept out of every message
    model = parse_stack_config(raw, stack, secret_paths=secret_paths)
    return StackSettings(project, stack, config, secret_keys, model)


def _is_secure(value: Any) -> bool:
    """The CLI's isSecureValue: a map of exactly one key, `secure`, whose value is a string."""
    return isinstance(value, dict) and set(value) == {"secure"} and isinstance(value["secure"], str)


def _has_secure(value: Any) -> bool:
    if _is_secure(value):
        return True
    if isinstance(value, dict):
        return any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def _placeholders(value: Any) -> Any:
    if _is_secure(value):
        return SECRET_PLACEHOLDER
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


MAX_STACK_FILE_BYTES = 16 * 1024 * 1024
MAX_YAML_VALUES = 200_000
"""More values than any stack needs: what an alias bomb expands to is refused before it is expanded."""


def _read_yaml(path: Path) -> Any:
    try:  # a FIFO or a device (a link to /dev/zero) is refused unread; a stack file is a few kilobytes
        text = read_regular_file(path, MAX_STACK_FILE_BYTES).decode("utf-8")
    except IsADirectoryError:
        raise StackConfigError([f"{path.name}: is a directory, not a stack file"]) from None
    except UnicodeDecodeError as exc:
        raise StackConfigError([f"{path.name}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise StackConfigError([f"{path.name}: cannot be read ({exc.strerror or exc})"]) from None
    try:
        data = stack_yaml.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise StackConfigError([f"{path.name}: {where}: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise StackConfigError([f"{path.name}: {exc}"]) from None
    problems: list[str] = []
    _check_plain(data, "", problems, [0])
    if problems:
        raise StackConfigError([f"{path.name}: {p}" for p in problems])
    return data


def _check_plain(value: Any, where: str, problems: list[str], seen: list[int]) -> None:
    """Only what the CLI's config holds: strings, numbers, booleans, null, lists and string-keyed maps."""
    seen[0] += 1
    if seen[0] > MAX_YAML_VALUES:
        if not any("aliases expand" in p for p in problems):
            problems.append(f"{where or 'document'}: aliases expand to more than {MAX_YAML_VALUES} values; refused")
        return
    here = where or "document"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{here}: key {key!r} is not a string; quote it")
                continue
            _check_plain(item, f"{where}.{key}" if where else key, problems, seen)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{here}[{i}]", problems, seen)
    elif isinstance(value, datetime.date | datetime.datetime | stack_yaml.YearZeroTimestamp):
        problems.append(f"{here}: an unquoted date ({value}); quote it, config values are strings")
    elif isinstance(value, float) and not math.isfinite(value):
        # the CLI passes numbers to the program as JSON, which has no NaN or infinity: it refuses the file
        problems.append(f"{here}: {value} is not a number the Pulumi CLI can pass on (JSON has no NaN or infinity)")
    elif isinstance(value, bytes | set | frozenset):
        problems.append(f"{here}: a {type(value).__name__} value (a YAML !!binary or !!set tag); not a config value")
    elif value is not None and not isinstance(value, str | int | float | bool):
        problems.append(f"{here}: a {type(value).__name__} value; not a config value")
