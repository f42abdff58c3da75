"""Strict JSON for untrusted files: what Python's ``json`` accepts but a strict parser (serde, the Rust
safetensors loader) refuses is refused here too, with one error type.

Refused: invalid UTF-8 (and lone surrogates), ``NaN`` / ``Infinity`` literals, numbers that overflow to
infinity, integer literals longer than :data:`~mlac.limits.MAX_JSON_INT_DIGITS` digits (Python would raise
``ValueError`` past 4300), duplicate object keys, and nesting deeper than ``max_depth`` (Python would raise
``RecursionError`` near 1000).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from mlac.limits import MAX_JSON_DEPTH, MAX_JSON_INT_DIGITS


class StrictJsonError(ValueError):
    """The text is not strict JSON (the message says why)."""


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {text[:30]} is out of range")
    return value


def _int_parser(max_digits: int) -> Callable[[str], int]:
    def bounded_int(text: str) -> int:
        if len(text.lstrip("-")) > max_digits:
            raise StrictJsonError(f"integer of {len(text)} digits (at most {max_digits})")
        return int(text)
    return bounded_int


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise StrictJsonError(f"duplicate key {dup[:40]!r}")
    return out


def _check_tree(value: Any, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` and strings that are not UTF-8 (a ``\\ud800`` escape decodes
    to a lone surrogate). Iterative: hostile input gets no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise StrictJsonError("a string holds a lone surrogate (not valid UTF-8)") from None
        elif isinstance(node, (dict, list)):
            if depth > max_depth:
                raise StrictJsonError(f"nested deeper than {max_depth} levels")
            items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in items if isinstance(child, (str, dict, list)))


def loads_strict(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, max_int_digits: int = MAX_JSON_INT_DIGITS) -> Any:
    """Parse ``data`` as strict JSON; raise :class:`StrictJsonError` for anything a strict parser refuses.

    ``max_int_digits``: longer integer literals are refused (tokenizer_config.json files that transformers
    writes hold ``model_max_length = int(1e30)``, 31 digits; see :data:`mlac.limits.MAX_TOKENIZER_INT_DIGITS`)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int_parser(max_int_digits),
                           object_pairs_hook=_unique_keys)
    except StrictJsonError:
        raise
    except UnicodeDecodeError as exc:
        raise StrictJsonError(f"not valid UTF-8 ({exc.reason})") from None
    except RecursionError:
        raise StrictJsonError(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # json.JSONDecodeError, and int() past Python's digit limit
        raise StrictJsonError(str(exc)[:200]) from None
    _check_tree(value, max_depth)
    return value
