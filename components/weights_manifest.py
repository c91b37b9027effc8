"""A model version's weights pinned by content: the SHA-256 of every file under its S3 prefix, and the step that
checks them in the pod before the server starts (the fetch init container for `copy`, a verify init container for
`mount`). A changed, truncated, missing or added file refuses to start, with a message naming it.

The manifest is `sha256sum`'s own format (`<hex>  <path>`, one line a file, sorted by path), checked with
`sha256sum --check --strict` from GNU coreutils in the AWS CLI image, so what the pod runs is the standard tool,
not a checker of ours. Its digest (`sha256:<hex of the manifest's text>`) names the whole set of bytes: it is what
the provenance annotations, tags and stack outputs show."""

import hashlib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

MANIFEST_MAX_BYTES = 100_000
"""A manifest's text travels as one argument of the init container's process, and Linux takes at most 128 KiB
in one (MAX_ARG_STRLEN): about 900 files of 40-character paths."""
SIGNATURE_OBJECT = "model.sig"
"""The weights' OpenSSF model signature, at the top of their prefix (where `model_signing sign` writes it by default,
a name it leaves out of what it signs): never part of the weights, never copied (VERIFY_SCRIPT names it too)."""
_HEX = re.compile(r"[0-9a-f]{64}")
_SEGMENT = r"[A-Za-z0-9._+=@,][A-Za-z0-9._+=@,-]{0,254}"
_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,31}}")
"""A file's path under the prefix: no whitespace (sha256sum's and the shell's separator), no glob characters (the
copy's `--include` filters are globs), no `\\` (sha256sum escapes such names), no `.`/`..` segment, no segment
starting with `-` (an option to `aws` and `sha256sum`: `-` alone is sha256sum's stdin), at most 1,024 characters
(an S3 key's). Hidden files (`.gitattributes`, a Hugging Face download's `.cache/`) may be listed: listed, they
are seen in the lock and checked like the rest, and unlisted ones are refused."""


@dataclass(frozen=True)
class WeightsManifest:
    """The files of one version's weights and their SHA-256, by path under the version's prefix."""

    files: MappingProxyType[str, str]
    signer: str | None = None
    """`sha256:<fingerprint>` of the trusted key whose OpenSSF model signature lists exactly these files, when the
    model requires one (verified by the composition, composition/weights_signature.py); None: not required."""

    @property
    def text(self) -> str:
        """As `sha256sum` writes it and `sha256sum --check` reads it."""
        return "".join(f"{digest}  {path}\n" for path, digest in sorted(self.files.items()))

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.text.encode()).hexdigest()


def parse_manifest(files: Any) -> WeightsManifest:
    """A manifest from `{path: sha256 hex}` (the lock file's and a registry tag's form); raises ValueError naming
    the first entry that is not a safe relative path with a lower-case SHA-256."""
    if not isinstance(files, dict) or not files:
        raise ValueError("a manifest is a non-empty mapping of file paths to their SHA-256")
    for path, digest in files.items():
        shown = repr(str(path)[:120])
        if not isinstance(path, str) or len(path) > 1024 or not _PATH.fullmatch(path) or _has_dot_segment(path):
            raise ValueError(
                f"{shown} is not a file path the check can name safely (letters, digits and ._+=@,- in "
                "'/'-separated segments, none '.' or '..', none starting with '-')"
            )
        if not isinstance(digest, str) or not _HEX.fullmatch(digest):
            raise ValueError(f"{shown}: {str(digest)[:80]!r} is not a SHA-256 (64 lower-case hex digits)")
    directories = {path.rsplit("/", depth)[0] for path in files for depth in range(1, path.count("/") + 1)}
    clash = sorted(directories & set(files))
    if clash:
        raise ValueError(f"{clash[0]!r} is listed as a file and as a directory")
    manifest = WeightsManifest(MappingProxyType(dict(sorted(files.items()))))
    if len(manifest.text) > MANIFEST_MAX_BYTES:
        raise ValueError(
            f"a manifest of {len(files):,} files is {len(manifest.text):,} bytes as text; the check takes at most "
            f"{MANIFEST_MAX_BYTES:,} (one process argument)"
        )
    return manifest


def _has_dot_segment(path: str) -> bool:
    return any(segment in (".", "..") for segment in path.split("/"))


VERIFY_SCRIPT = r"""set -euo pipefail
source="$1" dir="$2" manifest="$3" digest="$4"
[ -n "$dir" ] || { echo "modelops: no weights directory given" >&2; exit 2; }
if [ -n "$source" ]; then
  # from nothing at every attempt: a retry after a refused or killed copy would keep the refused bytes (sync skips a
  # local file of the same size that is newer than the object) or a half-written temporary file
  (shopt -s dotglob nullglob; rm -rf -- "$dir"/*)
  # exactly the files the manifest lists: an object added under the prefix is never copied
  filters=(--exclude '*')
  while read -r _ path; do [ -z "$path" ] || filters+=(--include "$path"); done <<< "$manifest"
  aws s3 sync --only-show-errors "$source" "$dir" "${filters[@]}"
fi
cd "$dir"
if ! printf '%s' "$manifest" | sha256sum --check --strict --quiet - >&2; then
  echo "modelops: the weights in $dir are not the bytes pinned by $digest (a file above differs, is missing or" \
    "is truncated): refusing to serve them" >&2
  exit 1
fi
# and nothing beside them: a file the manifest does not list (code a runtime would import) is refused too, but for
# the weights' signature at the top (model.sig, JSON the server never loads), which is pinned by the lock instead
declare -A listed
while read -r _ path; do [ -z "$path" ] || listed["$path"]=1; done <<< "$manifest"
shopt -s globstar dotglob nullglob
for path in **; do
  if [ ! -d "$path" ] && [ -z "${listed[$path]+set}" ] && [ "$path" != model.sig ]; then
    echo "modelops: $dir/$path is not in the manifest $digest: refusing to serve the weights" >&2
    exit 1
  fi
done
echo "modelops: ${#listed[@]} files verified against $digest"
"""
"""Run by bash (`bash -c VERIFY_SCRIPT <name> SOURCE DIR MANIFEST DIGEST`): copies SOURCE (an `s3://` prefix; ""
for a mounted volume, already in place) to DIR, then checks DIR against MANIFEST. bash, not sh, for arrays and
`**` (globstar); both and sha256sum are in the AWS CLI image (Amazon Linux)."""


def verify_command(source: str, directory: str, manifest: WeightsManifest) -> list[str]:
    """The init container's command: `source` "" checks what is already at `directory` (a mounted volume)."""
    return ["/bin/bash", "-c", VERIFY_SCRIPT, "verify-weights", source, directory, manifest.text, manifest.digest]
