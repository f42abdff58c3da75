"""The checkpoint content id: canonical, sensitive to every file, and the same for a directory and its upload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlac.checkpoint_id import content_id, dir_content_id, dir_files, manifest

A, B = "a" * 64, "b" * 64


def test_manifest_is_sorted_sha256sum_lines_under_a_version_header() -> None:
    assert manifest({"model.safetensors": A, "config.json": B}) == (
        f"mlac-checkpoint-manifest/1\n{B}  config.json\n{A}  model.safetensors\n".encode())
    assert content_id({"x": A, "y": B}) == content_id({"y": B, "x": A}) == hashlib.sha256(manifest({"x": A, "y": B})).hexdigest()


def test_every_name_and_hash_changes_the_id() -> None:
    base = content_id({"model.safetensors": A, "config.json": B})
    assert content_id({"model.safetensors": A, "config.json": A}) != base  # same weights, other config
    assert content_id({"model.safetensors": A, "tokenizer.json": B}) != base
    assert content_id({"model.safetensors": A, "config.json": B, "vocab.txt": A}) != base
    assert content_id({"model.safetensors": A}) != base


@pytest.mark.parametrize("files", [{}, {"a/b": A}, {"..": A}, {"x\n": A}, {"x": "A" * 64}, {"x": A[:-1]}])
def test_names_and_hashes_that_could_make_a_manifest_ambiguous_are_refused(files: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        manifest(files)


def test_directory_id_over_its_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"w")
    (tmp_path / "sub").mkdir()  # only the files directly inside count
    files = {"config.json": hashlib.sha256(b"{}").hexdigest(), "model.safetensors": hashlib.sha256(b"w").hexdigest()}
    assert dir_files(tmp_path) == files and dir_content_id(tmp_path) == content_id(files)
    assert dir_files(tmp_path, names={"config.json"}) == {"config.json": files["config.json"]}
    assert dir_files(tmp_path, known={"model.safetensors": A})["model.safetensors"] == A  # not read again
