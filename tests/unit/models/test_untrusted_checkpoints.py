"""Small hostile checkpoint files are refused quickly with a CheckpointError (a 4xx), never a crash or a long build."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

from mlac.errors import CheckpointError
from mlac.limits import MODEL_LIMITS
from mlac.models import load_checkpoint, validate_checkpoint_dir
from mlac.models.build import minilm_path
from mlac.models.config_check import check_config_limits
from tests.unit.models.micro import edit_config, split_weights, write_weights


def _refused(folder: Path, *, check_values: bool = True) -> CheckpointError:
    with pytest.raises(CheckpointError) as err:
        validate_checkpoint_dir(folder, check_values=check_values)
    return err.value


def test_the_micro_checkpoint_is_valid_and_loads(micro_checkpoint: Path) -> None:
    info = validate_checkpoint_dir(micro_checkpoint)
    assert info.hidden_size == 8 and info.num_beneficial == 2
    assert load_checkpoint(micro_checkpoint).model.num_beneficial == 2


def test_fifteen_thousand_layers_are_refused_before_anything_is_built(micro_copy: Path) -> None:
    edit_config(micro_copy, lambda c: c.update(num_hidden_layers=15_000))
    started = time.perf_counter()
    err = _refused(micro_copy)
    assert err.code == "model_too_large" and "num_hidden_layers" in str(err)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("key", "value", "code"), [
    ("num_attention_heads", 0, "bad_config"),       # was ZeroDivisionError
    ("vocab_size", -1, "bad_config"),               # was RuntimeError (negative dimension)
    ("hidden_size", True, "bad_config"),            # a bool is not a size
    ("intermediate_size", 16.5, "bad_config"),      # integers only where integers are meant
    ("num_hidden_layers", "2", "bad_config"),
    ("max_position_embeddings", 10**18, "model_too_large"),
    ("hidden_size", MODEL_LIMITS.max_hidden_size + 2, "model_too_large"),
    ("vocab_size", MODEL_LIMITS.max_vocab_size + 1, "model_too_large"),
    ("intermediate_size", MODEL_LIMITS.max_intermediate_size + 1, "model_too_large"),
    ("num_attention_heads", MODEL_LIMITS.max_attention_heads + 2, "model_too_large"),
    ("inner_group_num", 15_000, "model_too_large"),  # a layer count under another name (ALBERT)
])
def test_declared_sizes_are_checked(micro_copy: Path, key: str, value: object, code: str) -> None:
    edit_config(micro_copy, lambda c: c.update({key: value}))
    err = _refused(micro_copy)
    assert err.code == code, str(err)
    assert key in str(err)


def test_a_config_implying_more_parameters_than_the_file_holds_is_refused(micro_copy: Path) -> None:
    # Within every cap, but 24 layers of hidden 1024 need ~300M parameters; the file holds ~3,000.
    edit_config(micro_copy, lambda c: c.update(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16,
                                               intermediate_size=4096))
    err = _refused(micro_copy)
    assert err.code == "size_mismatch" and "parameters" in str(err)


def test_real_encoders_fit_the_limits() -> None:
    minilm = json.loads((minilm_path() / "config.json").read_text(encoding="utf-8"))
    bert_large = BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    roberta_large = RobertaConfig(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                  intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1)
    xlmr_large = XLMRobertaConfig(vocab_size=250002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                  intermediate_size=4096, max_position_embeddings=514)
    for raw in (minilm, bert_large.to_dict(), roberta_large.to_dict(), xlmr_large.to_dict()):
        check_config_limits(raw)  # no error


@pytest.mark.parametrize("text", [
    '{"model_type": "bert", "a": ' + "[" * 200_000 + "]" * 200_000 + "}",  # was RecursionError
    '{"model_type": "bert", "a": ' + "[" * 100 + "]" * 100 + "}",          # deeper than any real config
    '{"model_type": "bert", "hidden_dropout_prob": NaN}',                   # was accepted
    '{"model_type": "bert", "layer_norm_eps": Infinity}',
    '{"model_type": "bert", "layer_norm_eps": 1e999}',                      # overflows to inf
    '{"model_type": "bert", "pad_token_id": ' + "1" * 5000 + "}",           # was ValueError (int digits)
    '{"model_type": "bert", "vocab_size": 32, "vocab_size": 33}',           # duplicate key
])
def test_config_json_is_parsed_strictly(micro_copy: Path, text: str) -> None:
    (micro_copy / "config.json").write_text(text, encoding="utf-8")
    assert _refused(micro_copy).code == "bad_config"


def test_an_oversized_config_json_is_refused_unread(micro_copy: Path) -> None:
    (micro_copy / "config.json").write_text('{"model_type": "bert", "pad": "' + "x" * MODEL_LIMITS.max_config_bytes + '"}',
                                            encoding="utf-8")
    err = _refused(micro_copy)
    assert err.code == "bad_config" and "bytes" in str(err)


def _edit_header(folder: Path, edit, raw_edit=None) -> None:
    weights = folder / "model.safetensors"
    header, data = split_weights(weights)
    edit(header)
    text = json.dumps(header)
    write_weights(weights, raw_edit(text) if raw_edit else text, data)


def _shape_with_bool(header: dict) -> None:
    key = next(k for k in header if k.endswith("token_type_embeddings.weight"))
    assert header[key]["shape"][0] == 1
    header[key]["shape"][0] = True  # Python's True == 1; the Rust loader refuses a bool


@pytest.mark.parametrize("check_values", [True, False])
@pytest.mark.parametrize(("name", "edit", "raw_edit"), [
    ("metadata_int", lambda h: h.update(__metadata__={"format": 1}), None),
    ("metadata_list", lambda h: h.update(__metadata__={"format": ["pt"]}), None),
    ("metadata_not_object", lambda h: h.update(__metadata__="pt"), None),
    ("nan_literal", lambda h: h.update(__metadata__={"format": "NANHERE"}), lambda t: t.replace('"NANHERE"', "NaN")),
    ("bool_in_shape", _shape_with_bool, None),
    ("bool_offset", lambda h: h.update({"x": {"dtype": "U8", "shape": [0], "data_offsets": [False, False]}}), None),
    ("lone_surrogate", lambda h: h.update(__metadata__={"format": "SUR"}), lambda t: t.replace('"SUR"', '"\\ud800"')),
    ("deep", lambda h: h.update(__metadata__={"format": "DEEP"}), lambda t: t.replace('"DEEP"', "[" * 50_000 + "]" * 50_000)),
])
def test_headers_the_rust_loader_refuses_are_refused(micro_copy: Path, name: str, edit, raw_edit, check_values: bool) -> None:
    _edit_header(micro_copy, edit, raw_edit)
    err = _refused(micro_copy, check_values=check_values)
    assert err.code in {"not_safetensors", "bad_offsets"}, (name, str(err))


def test_a_valid_header_with_string_metadata_is_accepted(micro_copy: Path) -> None:
    _edit_header(micro_copy, lambda h: h.update(__metadata__={"format": "pt", "note": "ok"}))
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2
