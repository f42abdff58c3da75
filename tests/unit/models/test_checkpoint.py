"""Checkpoint round trip, determinism, and the battery of bad checkpoints (each a specific error code)."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mlac.errors import CheckpointError
from mlac.models import (
    build_tiny_bert,
    load_checkpoint,
    load_minilm,
    make_head,
    random_reinit,
    save_checkpoint,
    validate_checkpoint_dir,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = build_tiny_bert(4, seed=3)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, tok, out, {"seed": 3, "parent_sha256": None}, beneficial_names=("a", "b", "c", "d"))
    return out


def _copy(saved: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(saved, dst)
    return dst


def test_round_trip_is_exact_and_records_provenance(saved: Path) -> None:
    loaded = load_checkpoint(saved)
    fresh, _ = build_tiny_bert(4, seed=3)
    for (k, a), b in zip(fresh.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert loaded.info.beneficial_names == ("a", "b", "c", "d")
    prov = json.loads((saved / "provenance.json").read_text())
    assert prov["weights_sha256"] == loaded.sha256
    assert prov["seed"] == 3 and "torch" in prov["package_versions"]


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, tok = build_tiny_bert(3, seed=11)
    b, _ = build_tiny_bert(3, seed=11, tokenizer=tok)
    c, _ = build_tiny_bert(3, seed=12, tokenizer=tok)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.trunk.embeddings.word_embeddings.weight, c.trunk.embeddings.word_embeddings.weight)


def test_random_reinit_changes_every_weight_keeps_shapes() -> None:
    model, _ = build_tiny_bert(3, seed=0)
    rand = random_reinit(model, seed=99)
    for (name, p), q in zip(model.named_parameters(), rand.parameters(), strict=True):
        assert p.shape == q.shape
        if "LayerNorm" not in name and not name.endswith("bias"):  # constant-initialised
            assert not torch.equal(p, q), name


def test_fresh_heads_are_seeded() -> None:
    a, b, c = make_head(16, 2, seed=1), make_head(16, 2, seed=1), make_head(16, 2, seed=2)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_offline_minilm_loads_and_embeds() -> None:
    loaded = load_minilm(num_beneficial=3)
    assert loaded.info.num_parameters > 20_000_000
    batch = loaded.tokenizer(["a nurse at the hospital", "a surgeon"], return_tensors="pt", padding=True)
    feats = loaded.model(batch["input_ids"], batch["attention_mask"])
    assert feats.shape == (2, 384) and torch.isfinite(feats).all()


def test_plain_encoder_dir_needs_head_size(tmp_path: Path, saved: Path) -> None:
    d = _copy(saved, tmp_path)
    tensors = {k: v for k, v in load_file(str(d / "model.safetensors")).items() if not k.startswith("mlac.")}
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(d)
    assert err.value.code == "missing_head"
    assert load_checkpoint(d, num_beneficial=5).model.num_beneficial == 5


def _write_raw(path: Path, header: dict, data: bytes, *, declared_len: int | None = None) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", declared_len if declared_len is not None else len(raw)) + raw + data)


def _corrupt(kind: str, d: Path) -> None:
    weights = d / "model.safetensors"
    if kind == "pickle_only":
        weights.unlink()
        (d / "pytorch_model.bin").write_bytes(pickle.dumps({"a": 1}))
    elif kind == "pickle_renamed":
        weights.write_bytes(pickle.dumps({"weights": list(range(100))}))
    elif kind == "header_too_large":
        _write_raw(weights, {}, b"", declared_len=10**12)
    elif kind == "header_past_end":
        _write_raw(weights, {}, b"", declared_len=4096)
    elif kind in ("overlap", "trailing", "shape", "nan", "missing_tensor", "bad_dtype"):
        tensors = load_file(str(weights))
        if kind == "shape":
            tensors["embeddings.word_embeddings.weight"] = tensors["embeddings.word_embeddings.weight"][:, :64].contiguous()
        elif kind == "nan":
            tensors["encoder.layer.0.output.dense.bias"][0] = float("nan")
        elif kind == "missing_tensor":
            del tensors["encoder.layer.1.output.dense.weight"]
        elif kind == "bad_dtype":
            tensors["encoder.layer.0.output.dense.bias"] = torch.zeros(128, dtype=torch.int64)
        save_file(tensors, str(weights))
        if kind == "trailing":
            with weights.open("ab") as fh:
                fh.write(b"\0" * 16)
        if kind == "overlap":
            header = {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            }
            _write_raw(weights, header, b"\0" * 12)
    elif kind == "missing_config":
        (d / "config.json").unlink()
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("pickle_only", "pickle_refused"),
        ("pickle_renamed", "header_too_large"),
        ("header_too_large", "header_too_large"),
        ("header_past_end", "header_out_of_bounds"),
        ("overlap", "bad_offsets"),
        ("trailing", "trailing_bytes"),
        ("shape", "shape_mismatch"),
        ("nan", "non_finite"),
        ("missing_tensor", "missing_tensor"),
        ("bad_dtype", "bad_dtype"),
        ("missing_config", "missing_config"),
    ],
)
def test_bad_checkpoints_are_refused_with_specific_codes(kind: str, code: str, saved: Path, tmp_path: Path) -> None:
    d = _copy(saved, tmp_path)
    _corrupt(kind, d)
    with pytest.raises(CheckpointError) as err:
        validate_checkpoint_dir(d)
    assert err.value.code == code, str(err.value)
    with pytest.raises(CheckpointError):
        load_checkpoint(d)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        validate_checkpoint_dir(tmp_path / "nope")
