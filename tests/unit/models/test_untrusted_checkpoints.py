"""Small hostile checkpoint files are refused quickly with a CheckpointError (a 4xx), never a crash or a long build."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

from mlac.errors import CheckpointError
from mlac.limits import MODEL_LIMITS
from mlac.models import load_checkpoint, validate_checkpoint_dir
from mlac.models.build import minilm_path
from mlac.models.config_check import check_config_limits
from mlac.models.tokenizer_check import check_tokenizer
from tests.unit.models.micro import MICRO_VOCAB, edit_config, split_weights, write_weights


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


# --- intake: custom code, tokenizer, dtype policy (issue 14, item 5) ---------------------------------------------


def _edit_json(folder: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = folder / name
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    edit(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _edit_tokenizer(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    _edit_json(folder, "tokenizer.json", edit)


def _full_vocab(tok: dict[str, Any]) -> None:
    """Give the micro tokenizer.json the whole 32-token vocabulary of its config (ids 0..31)."""
    tok["model"]["vocab"] = {token: i for i, token in enumerate(MICRO_VOCAB)}


@pytest.mark.parametrize(("file_name", "edit"), [
    ("config.json", lambda d: d.update(auto_map={"AutoModel": "modeling_evil.EvilModel"})),
    ("config.json", lambda d: d.update(auto_map={"AutoConfig": "attacker/repo--configuration_evil.EvilConfig"})),
    ("config.json", lambda d: d.update(custom_pipelines={"evil": {"impl": "pipe.Evil", "pt": ["AutoModel"]}})),
    ("config.json", lambda d: d.update(text_config={"auto_map": {"AutoModel": "m.M"}})),  # nested sub-config
    ("config.json", lambda d: d.update(tokenizer_class="attacker/repo--tok.EvilTokenizer")),
    ("tokenizer_config.json", lambda d: d.update(auto_map={"AutoTokenizer": ["tok.EvilTokenizer", None]})),
    ("tokenizer_config.json", lambda d: d.update(auto_map=["tok.EvilTokenizer", "tok.EvilTokenizerFast"])),  # legacy
    ("tokenizer_config.json", lambda d: d.update(tokenizer_class="attacker/repo--tok.EvilTokenizer")),
    ("tokenizer_config.json", lambda d: d.update(tokenizer_class="EvilTokenizer")),  # not built into transformers
    ("special_tokens_map.json", lambda d: d.update(auto_map={"AutoTokenizer": ["tok.T", None]})),
])
def test_custom_code_references_are_refused(micro_copy: Path, file_name: str, edit) -> None:
    _edit_json(micro_copy, file_name, edit)
    err = _refused(micro_copy)
    assert err.code == "custom_code_refused", str(err)
    assert str(err).startswith(file_name) and "\n" not in str(err)


def test_label_names_that_look_like_keys_are_not_custom_code(micro_copy: Path) -> None:
    edit_config(micro_copy, lambda c: c.update(id2label={"0": "auto_map", "1": "b"}, label2id={"auto_map": 0, "b": 1}))
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2


@pytest.mark.parametrize(("name", "raw"), [
    ("not_json", lambda t: t[: len(t) // 2]),
    ("nan", lambda t: t.replace('"continuing_subword_prefix"', '"x": NaN, "continuing_subword_prefix"', 1)),
    ("duplicate_key", lambda t: t.replace('"version"', '"version": "1.0", "version"', 1)),
    ("no_model", lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "model"})),
    ("unknown_model", lambda t: json.dumps({**json.loads(t), "model": {**json.loads(t)["model"], "type": "NoSuchModel"}})),
    ("vocab_not_object", lambda t: json.dumps({**json.loads(t), "model": {**json.loads(t)["model"], "vocab": 7}})),
    ("unk_missing", lambda t: json.dumps({**json.loads(t), "model": {**json.loads(t)["model"], "unk_token": "[NOPE]"}})),
    ("array", lambda t: "[]"),
])
def test_a_malformed_tokenizer_json_is_refused_with_one_line(micro_copy: Path, name: str, raw) -> None:
    path = micro_copy / "tokenizer.json"
    path.write_text(raw(path.read_text(encoding="utf-8")), encoding="utf-8")
    err = _refused(micro_copy)
    assert err.code == "bad_tokenizer", (name, str(err))
    assert str(err).startswith("tokenizer.json: ") and "\n" not in str(err), str(err)


@pytest.mark.parametrize(("file_name", "limit"), [
    ("tokenizer.json", "max_tokenizer_json_bytes"), ("tokenizer_config.json", "max_tokenizer_config_bytes"),
])
def test_oversized_tokenizer_files_are_refused(micro_copy: Path, file_name: str, limit: str) -> None:
    with pytest.raises(CheckpointError) as err:
        validate_checkpoint_dir(micro_copy, limits=replace(MODEL_LIMITS, **{limit: 64}))
    assert err.value.code == "bad_tokenizer" and "bytes" in str(err.value) and file_name in str(err.value)


@pytest.mark.parametrize(("file_name", "edit", "token_id"), [
    ("tokenizer.json", lambda t: t["model"]["vocab"].update(zz=40), 40),
    ("tokenizer.json", lambda t: t["post_processor"]["special_tokens"]["[CLS]"].update(ids=[30600]), 30600),
    ("tokenizer.json", lambda t: t["added_tokens"].append(
        {"id": 32, "content": "[NEW]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True}), 32),
    ("tokenizer.json", lambda t: t.update(padding={"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                                                   "pad_id": 99, "pad_type_id": 0, "pad_token": "[PAD]"}), 99),
    ("tokenizer_config.json", lambda d: d.update(added_tokens_decoder={"77": {"content": "[X]", "special": True}}), 77),
    ("tokenizer_config.json", lambda d: d.update(pad_token="[NEWPAD]"), 32),  # not in the 32-token vocab: added as id 32
    ("special_tokens_map.json", lambda d: d.update(additional_special_tokens=["[A]"]), 32),
    ("added_tokens.json", lambda d: d.update({"[B]": 33}), 33),
])
def test_token_ids_beyond_the_vocabulary_are_refused(micro_copy: Path, file_name: str, edit, token_id: int) -> None:
    _edit_tokenizer(micro_copy, _full_vocab)
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2  # 32 tokens for vocab_size 32: fits
    _edit_json(micro_copy, file_name, edit)
    err = _refused(micro_copy)
    assert err.code == "vocab_mismatch", str(err)
    assert f"token id {token_id} is not below vocab_size 32" in str(err) and "\n" not in str(err)


def test_a_vocab_txt_tokenizer_is_checked_against_the_vocabulary(micro_copy: Path) -> None:
    (micro_copy / "tokenizer.json").unlink()
    (micro_copy / "vocab.txt").write_text("\n".join(MICRO_VOCAB) + "\n", encoding="utf-8")
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2
    (micro_copy / "vocab.txt").write_text("\n".join([*MICRO_VOCAB, "extra"]) + "\n", encoding="utf-8")
    err = _refused(micro_copy)
    assert err.code == "vocab_mismatch" and "token id 32" in str(err)


def test_a_sentencepiece_model_alone_is_refused(micro_copy: Path) -> None:
    (micro_copy / "tokenizer.json").unlink()
    (micro_copy / "spiece.model").write_bytes(b"\x0a\x05hello")
    err = _refused(micro_copy)
    assert err.code == "bad_tokenizer" and "tokenizer.json" in str(err)


def _resave_weights(folder: Path, convert: Callable[[torch.Tensor], torch.Tensor], only: str | None = None) -> None:
    weights = folder / "model.safetensors"
    tensors = {k: (convert(v) if only is None or k.endswith(only) else v) for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})


def test_float64_weights_are_refused_with_how_to_convert(micro_copy: Path) -> None:
    _resave_weights(micro_copy, lambda t: t.double())
    err = _refused(micro_copy, check_values=False)
    assert err.code == "bad_dtype" and "float64" in str(err) and "model.float()" in str(err)


@pytest.mark.parametrize("convert", [lambda t: t.long(), lambda t: t.to(torch.uint8), lambda t: t.bool()])
def test_integer_parameters_are_refused(micro_copy: Path, convert) -> None:
    _resave_weights(micro_copy, convert, only="word_embeddings.weight")
    assert _refused(micro_copy, check_values=False).code == "bad_dtype"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_accepted_and_load(micro_copy: Path, dtype: torch.dtype) -> None:
    _resave_weights(micro_copy, lambda t: t.to(dtype))
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2
    assert load_checkpoint(micro_copy).model.num_beneficial == 2


def test_index_buffers_may_be_integers_but_nothing_else(micro_copy: Path) -> None:
    weights = micro_copy / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({**tensors, "embeddings.position_ids": torch.arange(16).unsqueeze(0),
               "embeddings.token_type_ids": torch.zeros(1, 16, dtype=torch.int64)}, str(weights))
    assert validate_checkpoint_dir(micro_copy).num_beneficial == 2
    save_file({**tensors, "embeddings.position_ids": torch.arange(16).unsqueeze(0).float()}, str(weights))
    assert _refused(micro_copy).code == "bad_dtype"


def test_the_offline_minilm_passes_every_intake_check() -> None:
    info = validate_checkpoint_dir(minilm_path(), check_values=False)  # its embeddings.position_ids buffer is I64
    assert info.hidden_size == 384
    assert check_tokenizer(minilm_path(), 30522).max_token_id == 30521


@pytest.mark.parametrize("setting", [{"model_max_length": "abc"}, {"padding_side": "middle"}, {"do_lower_case": "yes"},
                                     {"tokenizer_class": "XLMRobertaTokenizer"}])  # a class that cannot read these files
def test_a_tokenizer_config_transformers_cannot_load_is_refused(micro_copy: Path, setting: dict[str, Any]) -> None:
    _edit_json(micro_copy, "tokenizer_config.json", lambda d: d.update(setting))
    err = _refused(micro_copy)
    assert err.code == "bad_tokenizer" and "transformers cannot load it" in str(err) and "\n" not in str(err)
    assert str(micro_copy) not in str(err)
