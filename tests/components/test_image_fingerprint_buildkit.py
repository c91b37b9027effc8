"""The image tag's fingerprint sees the build context exactly as BuildKit does (issue #26, class 9): a file the
build never receives cannot change the tag, and anything the image receives must.

BuildKit reads the ignore file with moby/patternmatcher's ignorefile.ReadAll (a UTF-8 BOM dropped; `#` a comment
only in column 1; spaces trimmed; `!` re-includes; one leading `/` dropped) and prefers `<Dockerfile>.dockerignore`
beside the Dockerfile (https://docs.docker.com/build/concepts/context/#dockerignore-files and
#filename-and-location); patternmatcher compiles `**` to `(.*/)?` unless it ends the pattern, so `a/**b` matches
`a/b` and `a/x/b` but not `a/xb`. The context is walked without following links (a link is sent as a link) and
files keep their mode bits.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.images import build_fingerprint, dockerignore_patterns, ignored_by_docker


def tag(context: Path, dockerfile: str = "Dockerfile") -> str | None:
    return build_fingerprint(str(context), dockerfile, {}, "linux/amd64", None)


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "server.py").write_text("v1\n")
    return root


@pytest.mark.parametrize(
    "ignore, path, ignored",
    [
        ("\ufeffsecret.txt\n", "secret.txt", True),  # the BOM is not part of the first pattern
        ("  # not a comment\n", "# not a comment", True),  # `#` comments only in column 1
        ("# a comment\n", "# a comment", False),
        ("a/**b\n", "a/b", True),
        ("a/**b\n", "a/x/y/b", True),
        ("a/**b\n", "a/xb", False),  # `**` spans whole directories only
        ("**/*.tmp\n", "x.tmp", True),
        ("**/*.tmp\n", "d/e/x.tmp", True),
        ("docs\n!docs/keep.md\n", "docs/keep.md", False),
        ("docs\n!docs/keep.md\n", "docs/drop.md", True),
        ("//abs\n", "abs", True),
        ("!\n", "server.py", False),
    ],
)
def test_ignore_files_read_as_patternmatcher_reads_them(context, ignore, path, ignored):
    (context / ".dockerignore").write_text(ignore, encoding="utf-8")
    assert ignored_by_docker(path, dockerignore_patterns(context)) is ignored


def test_a_file_only_the_ignore_file_leaves_out_never_changes_the_tag(context):
    (context / ".dockerignore").write_text("\ufeffsecret.txt\n  # notes\na/**b\n")
    (context / "secret.txt").write_text("1")
    (context / "# notes").write_text("1")
    base = tag(context)
    (context / "secret.txt").write_text("2")
    (context / "# notes").write_text("2")
    assert tag(context) == base
    (context / "a").mkdir()
    (context / "a" / "xb").write_text("sent to the builder")
    assert tag(context) != base


def test_the_dockerfile_specific_ignore_file_takes_precedence(context):
    (context / "Dockerfile.cpu").write_text("FROM scratch\nCOPY . /\n")
    (context / "Dockerfile.cpu.dockerignore").write_text("*.md\n")
    (context / "notes.md").write_text("1")
    cpu, serving = tag(context, "Dockerfile.cpu"), tag(context)
    (context / "notes.md").write_text("2")
    assert tag(context, "Dockerfile.cpu") == cpu  # the CPU build never sees notes.md
    assert tag(context) != serving  # the serving build (plain .dockerignore: none) does


def test_a_link_is_hashed_as_a_link_never_followed_out_of_the_context(context, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_text("1")
    os.symlink(outside, context / "weights")
    base = tag(context)
    outside.write_text("2")  # the image gets the link, not these bytes
    assert tag(context) == base
    (context / "weights").unlink()
    os.symlink(tmp_path / "elsewhere", context / "weights")
    assert tag(context) != base


def test_a_link_to_a_device_or_a_directory_loop_is_not_read(context):
    os.symlink("/dev/zero", context / "zero")
    os.symlink(".", context / "loop")
    assert tag(context) is not None


def test_the_executable_bit_changes_the_tag(context):
    base = tag(context)
    os.chmod(context / "server.py", 0o755)
    assert tag(context) != base
