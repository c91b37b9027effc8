"""Which bytes each model version's weights are: `weights.lock.json` beside the stack files (written by
`modelops weights`, reviewed in the pull request like any lock file) maps an S3 prefix to its files' SHA-256, and a
registered version may carry its own in the registry (the `modelops.weights.manifest` tag). The pods check what
they serve against it (components/weights_manifest.py).

One file for the project, keyed by prefix rather than by stack or model: a version pinned once is the same bytes in
dev, staging and prod, a canary promoted to stable keeps its pin, and a roll-back finds the old version's.

Weights a model requires signed (`signature: key`) also have their OpenSSF model signature recorded, under
`signatures` by the same prefix (a key beside the files could be a file's name): every plan verifies it against the
stack's trusted keys and requires it to list exactly the pinned files (composition/weights_signature.py)."""

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.config import NAMESPACE, ArtifactAccess, ModelConfig, StackConfig, StackConfigError
from components.config.model import check_artifact_uri
from components.contracts import WEIGHTS_DIGEST_ANNOTATION, WEIGHTS_SIGNER_ANNOTATION
from components.weights_manifest import WeightsManifest, parse_manifest
from composition import stack_yaml
from composition.model_registry import RegisteredTracks
from composition.project_files import read_regular_file
from composition.weights_signature import KEYS_KEY, SignatureError, SigningKey, check_signed, verify_bundle

WEIGHTS_LOCK = "weights.lock.json"
LOCK_FORMAT = 1
MAX_LOCK_BYTES = 64 * 1024 * 1024
"""Hundreds of versions of manifests (at most 100 KB each) and their signatures."""
LOCK_PATH_VARIABLE = "MODELOPS_WEIGHTS_LOCK"
"""Another lock file than the project's (a stack file kept elsewhere, a test's)."""


@dataclass(frozen=True)
class WeightsLock:
    """The pinned manifests by `s3://bucket/prefix` (no trailing `/`)."""

    manifests: dict[str, WeightsManifest]
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By prefix, the model signature (a Sigstore bundle, as `model_signing sign` wrote it) of weights that
    must be signed."""

    def as_json(self) -> str:
        """The file's text: sorted, one file a line, so a pull request's diff shows exactly what moved."""
        weights = {uri: dict(self.manifests[uri].files) for uri in sorted(self.manifests)}
        data: dict[str, Any] = {"format": LOCK_FORMAT, "weights": weights}
        if self.signatures:
            data["signatures"] = {uri: self.signatures[uri] for uri in sorted(self.signatures)}
        return json.dumps(data, indent=2) + "\n"


def lock_path(project_dir: Path) -> Path:
    """`<stackConfigDir>/weights.lock.json` of the project (Pulumi.yaml's `stackConfigDir`), unless
    LOCK_PATH_VARIABLE names another."""
    if os.environ.get(LOCK_PATH_VARIABLE):
        return Path(os.environ[LOCK_PATH_VARIABLE])
    try:
        project = stack_yaml.load((project_dir / "Pulumi.yaml").read_text(encoding="utf-8"))
        stack_dir = str(project.get("stackConfigDir") or ".") if isinstance(project, dict) else "."
    except (OSError, ValueError, yaml.YAMLError):
        stack_dir = "."
    return project_dir / stack_dir / WEIGHTS_LOCK


def read_weights_lock(path: Path) -> WeightsLock:
    """The lock at `path` (empty when there is none); StackConfigError naming the entry that is wrong. Only a
    regular file of at most MAX_LOCK_BYTES is read (composition/project_files.py)."""
    try:
        text = read_regular_file(path, MAX_LOCK_BYTES).decode("utf-8")
    except FileNotFoundError:
        return WeightsLock({})
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise StackConfigError([f"{path.name}: cannot be read ({reason})"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StackConfigError([f"{path.name}: not JSON ({exc.msg}, line {exc.lineno})"]) from None
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT or not isinstance(data.get("weights"), dict):
        raise StackConfigError([f'{path.name}: expected {{"format": {LOCK_FORMAT}, "weights": {{...}}}}'])
    manifests, problems = {}, []
    for uri, files in data["weights"].items():
        try:
            manifests[_lock_key(uri)] = parse_manifest(files)
        except ValueError as exc:
            problems.append(f"{path.name}: weights[{str(uri)[:200]!r}]: {exc}")
    signatures = _lock_signatures(path.name, data.get("signatures", {}), manifests)
    if problems:
        raise StackConfigError(problems)
    return WeightsLock(manifests, signatures)


def _lock_signatures(name: str, value: Any, manifests: dict[str, WeightsManifest]) -> dict[str, dict[str, Any]]:
    """The recorded signatures, each of a pinned prefix (verified where a model requires it: `stack_manifests`)."""
    if not isinstance(value, dict):
        raise StackConfigError([f"{name}: signatures: expected {{<s3 prefix>: <signature bundle>, ...}}"])
    problems = [
        f"{name}: signatures[{str(uri)[:200]!r}]: "
        + ("not a signature bundle (a JSON object)" if not isinstance(bundle, dict) else "no weights pinned there")
        for uri, bundle in value.items()
        if not isinstance(bundle, dict) or str(uri).rstrip("/") not in manifests
    ]
    if problems:
        raise StackConfigError(problems)
    return {str(uri).rstrip("/"): bundle for uri, bundle in value.items()}


def _lock_key(uri: Any) -> str:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError("keys are the s3://<bucket>/<prefix> of a version's weights")
    check_artifact_uri(uri.rstrip("/"))
    return uri.rstrip("/")


def track_locations(model: ModelConfig) -> dict[str, str]:
    """By track, the `s3://` prefix its pods read (a registry URI already resolved); none without weights in S3."""
    if not model.artifact_bucket:
        return {}
    stable = f"s3://{model.artifact_bucket}/{model.artifact_prefix}".rstrip("/")
    canary = model.canary_artifact_uri
    return {"stable": stable, **({"canary": canary.rstrip("/")} if canary and model.canary else {})}


def stack_manifests(
    cfg: StackConfig, registered: dict[str, RegisteredTracks], lock: WeightsLock, keys: list[SigningKey]
) -> dict[str, dict[str, WeightsManifest]]:
    """By model and track, the manifest its weights are pinned to: the lock's entry for its prefix, else the
    registered version's own. A track that must be signed has its recorded signature verified with `keys` (the
    manifest then names the signer). StackConfigError naming the key of each track that is not pinned (with
    `security.requirePinnedWeights`, or a signature required) or whose signature fails."""
    pinned: dict[str, dict[str, WeightsManifest]] = {}
    problems = []
    for name, model in cfg.models.items():
        if (
            cfg.security.require_pinned_weights
            and model.artifact_bucket
            and model.artifact_access == ArtifactAccess.MOUNT
        ):
            problems.append(
                f"{NAMESPACE}:models.{name}.artifactAccess: a mount reads S3 live after the pod's start check (and "
                "unchecked after a container restart), so modelops:security.requirePinnedWeights needs `copy`"
            )
        tracks = registered.get(name)
        for track, location in track_locations(model).items():
            found = tracks.for_track(track) if tracks else None
            manifest = lock.manifests.get(location) or (found.manifest if found else None)
            prefix = f"{NAMESPACE}:models.{name}.{'' if track == 'stable' else 'canary.'}"
            if model.signature_for(track):
                try:
                    manifest = _signed(location, manifest, lock, keys)
                except SignatureError as exc:
                    problems.append(f"{prefix}signature: {exc}")
                    continue
            if manifest is not None:
                pinned.setdefault(name, {})[track] = manifest
            elif cfg.security.require_pinned_weights:
                problems.append(
                    f"{prefix}artifactUri: the weights at {location} are not pinned "
                    f"(modelops:security.requirePinnedWeights): run `modelops weights --stack <stack>` to record "
                    f"their files' SHA-256 in {WEIGHTS_LOCK}"
                    + (", or tag the registered version with modelops.weights.manifest" if found else "")
                )
    if problems:
        raise StackConfigError(problems)
    return pinned


def _signed(
    location: str, manifest: WeightsManifest | None, lock: WeightsLock, keys: list[SigningKey]
) -> WeightsManifest:
    """The pinned manifest of weights that must be signed, with its signer: the recorded signature must verify with
    a trusted key and list exactly the pinned files. Only the lock's pin counts (a registry tag carries no
    signature); offline, from the lock alone."""
    bundle = lock.signatures.get(location)
    if manifest is None or bundle is None or location not in lock.manifests:
        raise SignatureError(
            f"the weights at {location} have no {'signature' if manifest else 'pin'} in {WEIGHTS_LOCK}: run "
            "`modelops weights --stack <stack>` to pin them with their model.sig"
        )
    if not keys:
        raise SignatureError(f"{KEYS_KEY} names no key to verify it with")
    try:
        signed = verify_bundle(bundle, keys)
        check_signed(manifest, signed)
    except SignatureError as exc:
        raise SignatureError(f"the signature recorded in {WEIGHTS_LOCK} for {location}: {exc}") from None
    return dataclasses.replace(manifest, signer=f"sha256:{signed.signer.fingerprint}")


def provenance_tags(registered: RegisteredTracks | None, stable: WeightsManifest | None) -> dict[str, str]:
    """The stable track's provenance as AWS tags, for its serverless fallback (which serves the stable version):
    the registered version's, and the digest of the files pinned at its prefix. The function's handler is the
    model image's own: it is not made to check them (the pods do)."""
    tags = registered.stable_tags() if registered else {}
    if stable is not None:
        tags[WEIGHTS_DIGEST_ANNOTATION.replace("/", ":")] = stable.digest
    if stable is not None and stable.signer:
        tags[WEIGHTS_SIGNER_ANNOTATION.replace("/", ":")] = stable.signer
    return tags


def weights_provenance(
    registered: RegisteredTracks | None, pinned: dict[str, WeightsManifest]
) -> dict[str, dict[str, str]]:
    """By track, the annotations saying where its weights came from: the registered version's, and the key that
    signed them (the digest itself the component adds from the manifest)."""
    provenance = registered.provenance() if registered else {}
    for track, manifest in pinned.items():
        if manifest.signer:
            provenance[track] = {**provenance.get(track, {}), WEIGHTS_SIGNER_ANNOTATION: manifest.signer}
    return provenance
