"""Driving the real `pulumi` CLI, as a user would, with nothing beyond loopback.

Each tier run gets its own PULUMI_HOME, a file backend and passphrase secrets. Plugins come only from
PATH, never downloaded (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION): the built CLI, language host and
Kubernetes provider from the tools cache, and `pulumi-resource-{aws,docker-build,docker}` launchers
that start the stand-in provider (tests/e2e/standin_provider.py), which works against the tier's AWS
emulator (`aws_env`: AWS_ENDPOINT_URL on 127.0.0.1, throwaway keys; tests/e2e/aws_emulator.py).

The program runs from a copy of the repository's project files (Pulumi.yaml unchanged: the language host
builds the copy's own uv environment, as for a user), because `pulumi stack init` writes the passphrase
salt into the stack file. In each copied stack file the one thing a file backend cannot serve is
changed: the cluster's kubeconfig stack is `organization/eks-platform/<env>` (a file backend has only the
organization "organization"), a stack of a small platform project this harness creates, exporting the
local API server's kubeconfig as a secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "modelops-e2e-passphrase"
STANDIN_PACKAGES = ("aws", "docker-build", "docker")
PROJECT_FILES = (
    "Pulumi.yaml",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "__main__.py",
    "components",
    "composition",
    "modelops_cli",
    "policies",
    "models",
    "stacks",
)

PLATFORM_PROGRAM = '''"""The cluster platform's stack, as the modelops stacks reference it: exports the kubeconfig."""
import pulumi

pulumi.export("kubeconfig", pulumi.Output.secret(pulumi.Config().require("kubeconfig")))
'''


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode}\n--- stdout\n{self.stdout[-6000:]}\n"
            f"--- stderr\n{self.stderr[-6000:]}"
        )


class PulumiCli:
    def __init__(self, bin_dir: Path, workdir: Path, prometheus_url: str | None = None):
        self.bin_dir = bin_dir
        self.prometheus_url = prometheus_url
        """Where KEDA (on the host) reaches Prometheus: set as every model's `autoscaling.prometheusAddress`."""
        self.workdir = workdir
        self.home = workdir / "pulumi-home"
        self.state = workdir / "state"
        self.launchers = workdir / "plugins"
        self.project = workdir / "project"
        self.aws_env: dict[str, str] = {}
        """The AWS emulator's endpoint and throwaway credentials (tests/e2e/aws_emulator.py `env()`): the
        stand-in provider, started by the engine with this environment, talks to it and nothing else."""
        for d in (self.home, self.state, self.launchers):
            d.mkdir(parents=True, exist_ok=True)
        self._copy_project()
        python = ROOT / ".venv" / "bin" / "python"
        for package in STANDIN_PACKAGES:
            launcher = self.launchers / f"pulumi-resource-{package}"
            launcher.write_text(
                f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{python}" -u -m tests.e2e.standin_provider ' f'{package} "$@"\n'
            )
            launcher.chmod(0o755)

    def _copy_project(self) -> None:
        if self.project.exists():
            return
        ignore = shutil.ignore_patterns("venv", ".venv", "__pycache__", "*.pyc")
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, self.project / name, ignore=ignore)
            else:
                self.project.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, self.project / name)
        # The policy pack's own environment, as `pulumi preview --policy-pack` expects it (PulumiPolicy.yaml:
        # pip toolchain, virtualenv `venv`), built from its requirements like CI does.
        uv = str(ROOT / ".tools" / "bin" / "uv")
        pack = self.project / "policies"
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(pack / "venv")], check=True)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--require-hashes",
                "--python",
                str(pack / "venv" / "bin" / "python"),
                "-r",
                str(pack / "requirements.txt"),
            ],
            check=True,
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_", "KUBECONFIG"))}
        env.update(
            {
                "PATH": os.pathsep.join(
                    [str(self.launchers), str(self.bin_dir), str(ROOT / ".tools" / "bin"), env.get("PATH", "")]
                ),
                "PULUMI_HOME": str(self.home),
                "PULUMI_BACKEND_URL": f"file://{self.state}",
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_SKIP_CONFIRMATIONS": "true",
                "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
                # as the up workflow sets it: image builds must push single manifests (components/images.py)
                "BUILDX_NO_DEFAULT_ATTESTATIONS": "1",
                # The pre-flight's AWS calls have no endpoint here; `auto` models decide without it.
                "MODELOPS_PREFLIGHT": "off",
                "NO_COLOR": "1",
                # `--event-log` (the policy events) is a debug flag
                "PULUMI_DEBUG_COMMANDS": "true",
            }
        )
        env.update(self.aws_env)
        env.update(extra)
        return env

    def run(
        self, *args: str, cwd: Path | None = None, timeout: float = 1800, env: dict[str, str] | None = None
    ) -> CommandResult:
        argv = [str(self.bin_dir / "pulumi"), *args, "--non-interactive"]
        done = subprocess.run(
            argv, cwd=cwd or self.project, env=self.env(**(env or {})), capture_output=True, text=True, timeout=timeout
        )
        return CommandResult(argv, done.returncode, done.stdout, done.stderr)

    # --- stacks ---------------------------------------------------------------------------------
    def platform_stack(self, env: str, kubeconfig: str) -> None:
        """`organization/eks-platform/<env>`: the stack the modelops stacks read the kubeconfig from."""
        project = self.workdir / "eks-platform"
        project.mkdir(exist_ok=True)
        (project / "Pulumi.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "eks-platform",
                    "main": "__main__.py",
                    "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": str(ROOT / ".venv")}},
                }
            )
        )
        (project / "__main__.py").write_text(PLATFORM_PROGRAM)
        for step in (
            ["stack", "init", f"organization/eks-platform/{env}"],
            ["config", "set", "--secret", "kubeconfig", kubeconfig, "-s", env],
            ["up", "--yes", "--skip-preview", "-s", env],
        ):
            result = self.run(*step, cwd=project)
            if result.returncode != 0 and "already exists" not in result.stderr:
                raise RuntimeError(result.explain())

    def stack_config(self, env: str, edit=None) -> Path:
        """The copy's `stacks/Pulumi.<env>.yaml`: the repository's, for the file backend, optionally edited
        (`edit` gets the `config:` mapping)."""
        data = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{env}.yaml").read_text())
        cluster = data["config"]["modelops:cluster"]
        if cluster.get("kubeconfigStack"):
            cluster["kubeconfigStack"] = f"organization/eks-platform/{env}"
        if edit is not None:
            edit(data["config"])
        for model in (data["config"].get("modelops:models") or {}).values():
            autoscaling = model.get("autoscaling") or {}
            if self.prometheus_url and "prometheusQuery" in autoscaling:
                autoscaling["prometheusAddress"] = self.prometheus_url
        path = self.project / "stacks" / f"Pulumi.{env}.yaml"
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
        # keep what `pulumi stack init` wrote (the passphrase salt)
        for key in ("encryptionsalt", "secretsprovider", "encryptedkey"):
            if key in existing:
                data[key] = existing[key]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def init_stack(self, env: str) -> Path:
        self.stack_config(env)
        result = self.run("stack", "init", f"organization/modelops/{env}")
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise RuntimeError(result.explain())
        return self.stack_config(env)

    def policy_args(self, env: str) -> list[str]:
        return [
            "--policy-pack",
            str(self.project / "policies"),
            "--policy-pack-config",
            str(self.project / "policies" / "config" / f"{env}.json"),
        ]

    def preview(self, env: str, event_log: Path | None = None, policy: bool = True, **extra_env: str) -> CommandResult:
        args = ["preview", "-s", env, "--json", "--diff"]
        if policy:
            args += self.policy_args(env)
        if event_log is not None:
            args += ["--event-log", str(event_log)]
        return self.run(*args, env=extra_env)

    def up(self, env: str, policy: bool = True, event_log: Path | None = None, **extra_env: str) -> CommandResult:
        args = ["up", "--yes", "--skip-preview", "-s", env]
        if policy:
            args += self.policy_args(env)
        if event_log is not None:
            args += ["--event-log", str(event_log)]
        return self.run(*args, env=extra_env)

    def destroy(self, env: str, **extra_env: str) -> CommandResult:
        return self.run("destroy", "--yes", "--skip-preview", "-s", env, env=extra_env)

    def export(self, env: str) -> dict[str, Any]:
        result = self.run("stack", "export", "-s", env)
        if result.returncode != 0:
            raise RuntimeError(result.explain())
        return result.json()


def read_event_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
