"""Refuse custom-code references in a checkpoint's JSON files, wherever transformers could honour them.

Nothing here runs remote code (no ``trust_remote_code`` anywhere), but a checkpoint that asks for it is not a
plain encoder and would fail later, or run code if a future caller passed ``trust_remote_code=True``. What
transformers 5 reads (``models/auto/{configuration,tokenization,auto_factory}_auto.py``, ``pipelines``):

- ``auto_map`` (config.json: AutoConfig/AutoModel...; tokenizer_config.json: AutoTokenizer, also the legacy
  list form): a ``module.Class`` or ``repo--module.Class`` reference, imported by ``get_class_from_dynamic_module``;
- ``custom_pipelines`` (config.json): pipeline classes from the repository's code;
- ``tokenizer_class`` (tokenizer_config.json, config.json): resolved by name among transformers' own tokenizer
  classes (``tokenizer_class_from_name``); a name that is not one of them fails at load time, and a
  ``repo--module.Class`` form is a remote reference, so only built-in class names are accepted.

The keys are looked for in every nested object too (composite configs nest sub-configs), except under
``id2label`` / ``label2id``, whose keys are label names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from mlac.errors import CheckpointError

#: Keys through which transformers imports code from the checkpoint's repository.
CUSTOM_CODE_KEYS = frozenset({"auto_map", "custom_pipelines"})
#: Objects whose keys are data (label names), not settings.
LABEL_KEYS = frozenset({"id2label", "label2id"})
#: Base classes transformers accepts as ``tokenizer_class`` besides the per-model ones.
GENERIC_TOKENIZER_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast", "PythonBackend",
                                       "PreTrainedTokenizer", "SentencePieceBackend"})
CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


@lru_cache(maxsize=1)
def builtin_tokenizer_classes() -> frozenset[str]:
    """Names of transformers' own tokenizer classes (each also with and without the ``Fast`` suffix)."""
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    names: set[str] = set(GENERIC_TOKENIZER_CLASSES)
    for value in TOKENIZER_MAPPING_NAMES.values():
        for name in (value if isinstance(value, (tuple, list)) else (value,)):
            if isinstance(name, str):
                names.update({name, name.removesuffix("Fast"), name.removesuffix("Fast") + "Fast"})
    return frozenset(names)


def _objects(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of a parsed JSON document with its dotted location (iterative: depth is already bounded)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            yield where, node
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items()
                         if isinstance(v, (dict, list)) and k not in LABEL_KEYS)
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node) if isinstance(v, (dict, list)))


def refuse_custom_code(file_name: str, document: Any) -> None:
    """Raise CheckpointError (``custom_code_refused``) if ``document`` (the parsed ``file_name``) references code."""
    for where, obj in _objects(document):
        for key in sorted(CUSTOM_CODE_KEYS & obj.keys()):
            at = f"{where}.{key}" if where else key
            raise CheckpointError(
                f"{file_name}: '{at}' references custom code ({str(obj[key])[:80]}); only built-in transformers "
                "architectures are accepted: remove the key, or save the model with a built-in class",
                code="custom_code_refused",
            )
        tokenizer_class = obj.get("tokenizer_class")
        if tokenizer_class is not None and not _builtin_class(tokenizer_class):
            raise CheckpointError(
                f"{file_name}: tokenizer_class {str(tokenizer_class)[:80]!r} is not a tokenizer class built into "
                "transformers (custom or remote tokenizer code is not loaded)",
                code="custom_code_refused",
            )


def _builtin_class(name: object) -> bool:
    return isinstance(name, str) and bool(CLASS_NAME.match(name)) and name in builtin_tokenizer_classes()
