"""Property: any safetensors header or config.json is either accepted and loadable, or refused with a 4xx error.

Hypothesis changes the micro checkpoint's header and config with hostile values (bools for sizes, NaN literals,
non-string metadata, negative or huge numbers, deep nesting); validation must answer with a
:class:`~mlac.errors.MlacError` that the service maps to a 4xx, or accept a directory that then loads (the
Rust safetensors loader included). Any other exception fails the property.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from mlac.errors import MlacError
from mlac.models import load_checkpoint, validate_checkpoint_dir
from service.errors import status_for
from tests.unit.models.micro import split_weights, write_weights

PROPERTY = settings(max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
#: Replaced after json.dumps by a literal that Python's json accepts and strict JSON does not.
NAN = "__NAN_LITERAL__"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 2, 8, 16, 2**63, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False), st.just(NAN), st.text(max_size=8),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                           max_leaves=6)
size_like = st.one_of(st.integers(-3, 40), st.sampled_from([0, 10**6, 2**31, 2**64, 10**30]), st.booleans(),
                      st.floats(-4, 40), st.just(NAN), st.text(max_size=3), st.none(), st.lists(st.integers(0, 4), max_size=2))

CONFIG_KEYS = ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size",
               "max_position_embeddings", "type_vocab_size", "pad_token_id", "hidden_act", "layer_norm_eps",
               "hidden_dropout_prob", "position_embedding_type", "model_type", "mlac", "id2label", "inner_group_num"]


def _dump(value: Any) -> str:
    return json.dumps(value).replace(f'"{NAN}"', "NaN")


def _check(folder: Path) -> None:
    """The property itself."""
    try:
        info = validate_checkpoint_dir(folder)
    except MlacError as exc:
        assert 400 <= status_for(exc) < 500, exc
        return
    load_file(str(folder / "model.safetensors"))  # the Rust loader agrees
    load_checkpoint(folder, num_beneficial=None if info.num_beneficial else 2)


def _fresh(micro_checkpoint: Path, tmp: str) -> Path:
    folder = Path(tmp) / "ckpt"
    shutil.copytree(micro_checkpoint, folder)
    return folder


config_edits = st.dictionaries(st.sampled_from(CONFIG_KEYS), st.one_of(size_like, json_values), min_size=1, max_size=3)


@PROPERTY
@given(edits=config_edits, drop=st.lists(st.sampled_from(CONFIG_KEYS), max_size=2))
def test_any_config_is_accepted_and_loadable_or_refused(micro_checkpoint: Path, edits: dict[str, Any],
                                                        drop: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fresh(micro_checkpoint, tmp)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config.update(edits)
        for key in drop:
            config.pop(key, None)
        (folder / "config.json").write_text(_dump(config), encoding="utf-8")
        _check(folder)


tensor_edits = st.fixed_dictionaries({}, optional={
    "dtype": st.one_of(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "f32", ""]), json_values),
    "shape": st.one_of(st.lists(size_like, max_size=3), json_values),
    "data_offsets": st.one_of(st.lists(size_like, min_size=2, max_size=2), json_values),
    "extra": json_values,
})
metadata = st.one_of(json_values, st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), scalars), max_size=3))


@PROPERTY
@given(which=st.integers(0, 10_000), edit=tensor_edits, meta=st.one_of(st.none(), metadata),
       extra_name=st.one_of(st.none(), st.text(max_size=6)), pad=st.sampled_from(["", "  ", "\x00", "\n"]))
def test_any_safetensors_header_is_accepted_and_loadable_or_refused(
    micro_checkpoint: Path, which: int, edit: dict[str, Any], meta: Any, extra_name: str | None, pad: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fresh(micro_checkpoint, tmp)
        weights = folder / "model.safetensors"
        header, data = split_weights(weights)
        names = sorted(k for k in header if k != "__metadata__")
        target = names[which % len(names)] if extra_name is None else extra_name
        entry = dict(header.get(target, header[names[0]])) if isinstance(header.get(target, {}), dict) else {}
        entry.update(edit)
        header[target] = entry
        if meta is not None:
            header["__metadata__"] = meta
        write_weights(weights, _dump(header) + pad, data)
        _check(folder)


TOKENIZER_KEYS = ["model", "added_tokens", "post_processor", "padding", "truncation", "normalizer", "pre_tokenizer",
                  "decoder", "version"]
MODEL_KEYS = ["vocab", "unk_token", "type", "continuing_subword_prefix", "max_input_chars_per_word"]
TOKENIZER_CONFIG_KEYS = ["tokenizer_class", "pad_token", "unk_token", "cls_token", "model_max_length", "auto_map",
                         "added_tokens_decoder", "additional_special_tokens", "do_lower_case", "padding_side"]
token_ids = st.one_of(st.integers(-2, 40), st.sampled_from([2**31, 2**64]), st.booleans(), st.text(max_size=3))
vocabs = st.dictionaries(st.text(max_size=4), token_ids, max_size=4)


def _check_tokenizer_fits(folder: Path) -> None:
    """The property, plus: an accepted tokenizer never produces an id the embedding matrix lacks."""
    _check(folder)
    try:
        loaded = load_checkpoint(folder, num_beneficial=2)
    except MlacError:
        return
    ids = loaded.tokenizer("Hello, World! Ünïcödé 日本語 🙂 12345", "pair")["input_ids"]
    assert max(ids) < loaded.model.trunk.config.vocab_size


@PROPERTY
@given(top=st.dictionaries(st.sampled_from(TOKENIZER_KEYS), json_values, max_size=2),
       model=st.dictionaries(st.sampled_from(MODEL_KEYS), st.one_of(vocabs, json_values), max_size=2),
       config=st.dictionaries(st.sampled_from(TOKENIZER_CONFIG_KEYS), st.one_of(json_values, vocabs), max_size=2))
def test_any_tokenizer_is_accepted_and_fits_or_refused(micro_checkpoint: Path, top: dict[str, Any],
                                                        model: dict[str, Any], config: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _fresh(micro_checkpoint, tmp)
        tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        tok.update(top)
        if isinstance(tok.get("model"), dict):
            tok["model"] = {**tok["model"], **model}
        (folder / "tokenizer.json").write_text(_dump(tok), encoding="utf-8")
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        cfg.update(config)
        (folder / "tokenizer_config.json").write_text(_dump(cfg), encoding="utf-8")
        _check_tokenizer_fits(folder)
