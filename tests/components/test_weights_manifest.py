"""What a manifest may name: paths the pod's check can carry through bash, `aws s3 sync`'s glob filters and
sha256sum's format unchanged, and nothing that hides a file or names one outside the weights directory."""

from __future__ import annotations

import pytest

from components.weights_manifest import MANIFEST_MAX_BYTES, parse_manifest

DIGEST = "0" * 63 + "1"


@pytest.mark.parametrize(
    "path",
    [
        "../escape.bin",
        "a/../../b",
        "./model.bin",
        "/etc/passwd",
        "-",
        "--include",
        "tokenizer/-x",
        "has space.bin",
        "tab\tname",
        "line\nbreak",
        "glob*.bin",
        "glob?.bin",
        "[abc].bin",
        "back\\slash",
        "a//b",
        "trailing/",
        "",
        "é.bin",
        "a" * 256,
    ],
)
def test_paths_the_check_cannot_name_safely_are_refused(path):
    with pytest.raises(ValueError, match="is not a file path the check can name safely"):
        parse_manifest({path: DIGEST})


@pytest.mark.parametrize("digest", ["A" * 64, "0" * 63, "0" * 65, "g" * 64, "", None, 1])
def test_digests_are_lower_case_sha256(digest):
    with pytest.raises(ValueError, match="is not a SHA-256"):
        parse_manifest({"model.bin": digest})


@pytest.mark.parametrize("nested", ["tokenizer/vocab.txt", "tokenizer/a/b/vocab.txt"])
def test_a_path_cannot_be_a_file_and_a_directory(nested):
    with pytest.raises(ValueError, match="'tokenizer' is listed as a file and as a directory"):
        parse_manifest({"tokenizer": DIGEST, nested: DIGEST})


def test_hidden_files_may_be_listed():
    """A Hugging Face repository's `.gitattributes`, a `--local-dir` download's `.cache/`: listed, they are seen."""
    manifest = parse_manifest({".gitattributes": DIGEST, ".cache/huggingface/x.lock": DIGEST, "model.bin": DIGEST})
    assert ".gitattributes" in manifest.files


def test_the_text_is_sha256sums_format_sorted_and_the_digest_follows_it():
    manifest = parse_manifest({"b/x.bin": DIGEST, "a.json": DIGEST, "model-00001-of-00002.safetensors": DIGEST})
    assert manifest.text == (f"{DIGEST}  a.json\n{DIGEST}  b/x.bin\n{DIGEST}  model-00001-of-00002.safetensors\n")
    reordered = parse_manifest({"model-00001-of-00002.safetensors": DIGEST, "b/x.bin": DIGEST, "a.json": DIGEST})
    assert reordered.digest == manifest.digest
    assert parse_manifest({"a.json": DIGEST}).digest != manifest.digest


def test_a_manifest_too_large_for_one_process_argument_is_refused():
    files = {f"shard-{i:06d}-of-999999.safetensors": DIGEST for i in range(MANIFEST_MAX_BYTES // 100 + 1)}
    with pytest.raises(ValueError, match="one process argument"):
        parse_manifest(files)


@pytest.mark.parametrize("files", [{}, [], "model.bin", None])
def test_a_manifest_is_a_non_empty_mapping(files):
    with pytest.raises(ValueError, match="non-empty mapping"):
        parse_manifest(files)
