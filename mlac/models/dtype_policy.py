"""The dtype policy of uploaded weights, decided from the safetensors header alone (no tensor data is read).

- **Floating tensors** (every parameter, the pooler, the beneficial head, the heads that are ignored) must be
  F32, F16 or BF16: the workers compute in float32 and a checkpoint in half precision is converted on load.
  F64 is refused: it doubles memory and the time to read for no precision the audit uses, and a float64 model
  trips the float32 code paths late in a job. Convert it first (``model.float()`` or ``model.half()``, then
  ``save_pretrained``).
- **Integer tensors** (I64, I32) only where encoders really have them: the ``position_ids`` and
  ``token_type_ids`` index buffers that some BERT-family checkpoints save (MiniLM's ``embeddings.position_ids``
  is I64). They are not parameters and are never loaded.
- Everything else (BOOL, U8, I8, I16, an integer parameter, a float ``*_ids`` buffer) is refused.
"""

from __future__ import annotations

from mlac.errors import CheckpointError
from mlac.models.safetensors_check import TensorEntry

FLOAT_DTYPES = frozenset({"F32", "F16", "BF16"})
INDEX_DTYPES = frozenset({"I64", "I32"})
#: Buffers of token/position indices that checkpoints may carry (never loaded).
INDEX_BUFFER_SUFFIXES = ("position_ids", "token_type_ids")


def is_index_buffer(name: str) -> bool:
    """Whether ``name`` is one of the index buffers some encoders save next to their parameters."""
    return name.endswith(INDEX_BUFFER_SUFFIXES)


def check_dtype(file_name: str, entry: TensorEntry) -> None:
    """Raise CheckpointError (``bad_dtype``) unless ``entry``'s dtype is allowed for a tensor of its name."""
    if is_index_buffer(entry.name):
        if entry.dtype in INDEX_DTYPES:
            return
        raise CheckpointError(f"{file_name}: index buffer {entry.name[:80]!r} has dtype {entry.dtype}; "
                              f"expected {' or '.join(sorted(INDEX_DTYPES))}", code="bad_dtype")
    if entry.dtype in FLOAT_DTYPES:
        return
    if entry.dtype == "F64":
        raise CheckpointError(f"{file_name}: tensor {entry.name[:80]!r} is float64; weights must be F32, F16 or BF16: "
                              "convert the model (model.float() or model.half()) and save it again", code="bad_dtype")
    raise CheckpointError(f"{file_name}: tensor {entry.name[:80]!r} has dtype {entry.dtype}; weights must be F32, F16 "
                          "or BF16 (integer tensors only as position_ids/token_type_ids buffers)", code="bad_dtype")
