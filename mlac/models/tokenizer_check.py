"""Checks of an untrusted checkpoint's tokenizer files at intake, so a bad tokenizer fails the upload, not a job.

Every tokenizer file is read with a size cap (:class:`~mlac.limits.ModelLimits`) and every JSON one is parsed
strictly (:mod:`mlac.strict_json`) and refused if it references custom code (:mod:`mlac.models.custom_code`).
The tokenizer the job will use is then built the way transformers builds it: from ``tokenizer.json`` with the
Rust ``tokenizers`` library (``Tokenizer.from_str``), which must also encode a probe text (a WordPiece vocabulary
without its unknown token, for example, builds but fails on the first unknown character); without
``tokenizer.json``, from ``vocab.txt`` (WordPiece) or ``vocab.json`` + ``merges.txt`` (BPE). A
sentencepiece model alone is refused: converting it needs the ``sentencepiece`` package, which the workers do
not have. Then every token id the tokenizer can produce must be an index of the model's embedding matrix
(``config.json``'s ``vocab_size``): its vocabulary with added tokens, the ids its post-processor and padding
insert, the ids ``tokenizer_config.json`` / ``added_tokens.json`` declare, and the special tokens that
transformers would add to the vocabulary because they are not in it yet. Last, the directory is loaded the
way a job loads it (``AutoTokenizer.from_pretrained``, local files only, no remote code; ~0.1 s for BERT) and
the probe is encoded with it, so whatever else in ``tokenizer_config.json`` would break a job breaks the upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from mlac.errors import CheckpointError
from mlac.limits import MAX_TOKENIZER_INT_DIGITS, MODEL_LIMITS, ModelLimits
from mlac.models.custom_code import refuse_custom_code
from mlac.strict_json import StrictJsonError, loads_strict

TOKENIZER_JSON = "tokenizer.json"
#: Small JSON files next to the tokenizer (read whole by transformers).
SIDE_JSON_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json",
                   "provenance.json")
VOCAB_FILES = ("vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model")
#: Encoded at intake: ASCII, punctuation, accents, CJK, an emoji, digits and whitespace runs.
PROBE_TEXT = "Hello, World! Ünïcödé façade — 日本語のテキスト 🙂 12345\t  end."
PROBE_PAIR = "a second segment"


@dataclass(frozen=True)
class TokenizerInfo:
    """What the tokenizer check learned: which file defines the tokenizer and its largest token id."""

    source: str
    num_tokens: int
    max_token_id: int


def _bad(file_name: str, message: str, code: str = "bad_tokenizer") -> CheckpointError:
    return CheckpointError(f"{file_name}: {message}", code=code)


def _read_capped(path: Path, cap: int) -> bytes:
    size = path.stat().st_size
    if size > cap:
        raise _bad(path.name, f"{size} bytes, more than the {cap} this file may have")
    return path.read_bytes()


def _json_file(path: Path, cap: int) -> tuple[str, Any]:
    """(text, parsed object) of a capped, strictly parsed JSON object file."""
    raw = _read_capped(path, cap)
    try:
        value = loads_strict(raw, max_int_digits=MAX_TOKENIZER_INT_DIGITS)
    except StrictJsonError as exc:
        raise _bad(path.name, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _bad(path.name, "not a JSON object")
    return raw.decode("utf-8"), value


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_content(value: Any) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it: a string or {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _special_tokens(doc: dict[str, Any]) -> Iterator[str]:
    """The special tokens a tokenizer config names (``*_token`` keys and the lists of extra special tokens)."""
    for key, value in doc.items():
        if key.endswith("_token"):
            content = _token_content(value)
            if content is not None:
                yield content
        elif key in ("additional_special_tokens", "extra_special_tokens"):
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            for item in items:
                content = _token_content(item)
                if content is not None:
                    yield content


def _declared_ids(name: str, doc: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(where, id) of the ids a side file assigns: tokenizer_config's added_tokens_decoder, added_tokens.json."""
    if name == "added_tokens.json":
        for token, token_id in doc.items():
            if not _is_id(token_id):
                raise _bad(name, f"token {token[:40]!r} has id {token_id!r:.40}, not an integer")
            yield f"token {token[:40]!r}", int(token_id)
    decoder = doc.get("added_tokens_decoder") if name == "tokenizer_config.json" else None
    if decoder is None:
        return
    if not isinstance(decoder, dict):
        raise _bad(name, "added_tokens_decoder is not an object")
    for key in decoder:
        try:
            token_id = int(key)
        except ValueError:
            raise _bad(name, f"added_tokens_decoder key {key[:40]!r} is not a token id") from None
        yield f"added_tokens_decoder[{token_id}]", token_id


def _post_processor_ids(node: Any) -> Iterator[int]:
    """Token ids a tokenizer.json post-processor inserts (TemplateProcessing ``ids``; Bert/Roberta ``cls``/``sep``)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "ids" and isinstance(value, list):
                    yield from (v for v in value if _is_id(v))
                elif key in ("cls", "sep") and isinstance(value, list) and len(value) == 2 and _is_id(value[1]):
                    yield value[1]
                elif isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))


def _from_tokenizer_json(path: Path, limits: ModelLimits) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """(vocabulary with added tokens, other ids it inserts) of tokenizer.json, built and probed with ``tokenizers``."""
    text, doc = _json_file(path, limits.max_tokenizer_json_bytes)
    if not isinstance(doc.get("model"), dict):
        raise _bad(path.name, "no 'model' object: not a tokenizers file (tokenizer.save_pretrained writes one)")
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # the Rust library raises plain Exception with serde's message
        raise _bad(path.name, f"the tokenizers library refuses it ({str(exc).splitlines()[0][:200]})") from None
    try:
        encoding = tokenizer.encode(PROBE_TEXT, PROBE_PAIR)
    except Exception as exc:
        raise _bad(path.name, f"it cannot encode text ({str(exc).splitlines()[0][:200]})") from None
    extra = [("post_processor", i) for i in _post_processor_ids(doc.get("post_processor"))]
    extra += [("added_tokens", t["id"]) for t in doc.get("added_tokens") or () if isinstance(t, dict) and _is_id(t.get("id"))]
    padding = doc.get("padding")
    if isinstance(padding, dict) and _is_id(padding.get("pad_id")):
        extra.append(("padding.pad_id", padding["pad_id"]))
    extra += [("a probe encoding", i) for i in encoding.ids]
    return tokenizer.get_vocab(with_added_tokens=True), extra


def _from_vocab_txt(path: Path, limits: ModelLimits) -> dict[str, int]:
    """WordPiece vocabulary: one token per line, ids in line order (a repeated line keeps its last id)."""
    try:
        lines = _read_capped(path, limits.max_vocab_file_bytes).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise _bad(path.name, "not valid UTF-8") from None
    if not lines:
        raise _bad(path.name, "empty vocabulary")
    return {token: i for i, token in enumerate(lines)}


def _from_vocab_json(path: Path, limits: ModelLimits) -> dict[str, int]:
    """BPE vocabulary: an object of token -> id (merges.txt must come with it)."""
    if not (path.parent / "merges.txt").is_file():
        raise _bad(path.name, "a BPE vocabulary needs merges.txt next to it")
    _read_capped(path.parent / "merges.txt", limits.max_vocab_file_bytes)
    _, doc = _json_file(path, limits.max_vocab_file_bytes)
    for token, token_id in doc.items():
        if not _is_id(token_id) or token_id < 0:
            raise _bad(path.name, f"token {token[:40]!r} has id {token_id!r:.40}, not a token id")
    return {str(k): int(v) for k, v in doc.items()}


def _check_id(file_name: str, where: str, token_id: int, vocab_size: int) -> None:
    if not 0 <= token_id < vocab_size:
        raise _bad(file_name, f"{where}: token id {token_id} is not below vocab_size {vocab_size} of config.json "
                              "(the model has no embedding for it)", code="vocab_mismatch")


def check_tokenizer(path: Path, vocab_size: int, limits: ModelLimits = MODEL_LIMITS) -> TokenizerInfo:
    """Validate the tokenizer files of the checkpoint directory ``path`` against the model's ``vocab_size``.

    Raises CheckpointError: ``bad_tokenizer`` (too large, not strict JSON, refused by the tokenizers library,
    cannot encode, no loadable tokenizer file), ``custom_code_refused``, ``vocab_mismatch`` (a token id the
    tokenizer can produce has no row in the embedding matrix).
    """
    side: dict[str, dict[str, Any]] = {}
    for name in SIDE_JSON_FILES:
        if (path / name).is_file():
            _, doc = _json_file(path / name, limits.max_tokenizer_config_bytes)
            refuse_custom_code(name, doc)
            side[name] = doc
    for name in VOCAB_FILES:
        if (path / name).is_file():
            _read_capped(path / name, limits.max_vocab_file_bytes)
    extra: list[tuple[str, int]] = []
    if (path / TOKENIZER_JSON).is_file():
        source = TOKENIZER_JSON
        vocab, extra = _from_tokenizer_json(path / source, limits)
    elif (path / "vocab.txt").is_file():
        source, vocab = "vocab.txt", _from_vocab_txt(path / "vocab.txt", limits)
    elif (path / "vocab.json").is_file():
        source, vocab = "vocab.json", _from_vocab_json(path / "vocab.json", limits)
    else:
        raise _bad(path.name, "no tokenizer.json, vocab.txt or vocab.json (a sentencepiece model alone cannot be "
                              "loaded here: save the tokenizer with save_pretrained, which writes tokenizer.json)")
    if vocab:
        token, top = max(vocab.items(), key=lambda kv: kv[1])
        _check_id(source, f"token {token[:40]!r}", top, vocab_size)
    for where, token_id in extra:
        _check_id(source, where, token_id, vocab_size)
    next_id = max(vocab.values(), default=-1) + 1
    for name, doc in side.items():
        for where, token_id in _declared_ids(name, doc):
            _check_id(name, where, token_id, vocab_size)
        if name in ("tokenizer_config.json", "special_tokens_map.json"):
            for token in dict.fromkeys(_special_tokens(doc)):
                if token not in vocab:  # transformers adds it to the vocabulary: it gets the next id
                    _check_id(name, f"special token {token[:40]!r} (not in {source}, so it would be added)",
                              next_id, vocab_size)
                    vocab[token] = next_id
                    next_id += 1
    _check_transformers_load(path, vocab_size)
    return TokenizerInfo(source=source, num_tokens=len(vocab), max_token_id=max(vocab.values(), default=-1))


def _check_transformers_load(path: Path, vocab_size: int) -> None:
    """Load the tokenizer as a job does and encode the probe; its vocabulary and the ids must fit ``vocab_size``."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        ids = tokenizer(PROBE_TEXT, PROBE_PAIR)["input_ids"]
        vocab = tokenizer.get_vocab()
    except Exception as exc:  # transformers raises anything from ValueError to AttributeError on a bad config
        message = " ".join(f"{type(exc).__name__}: {exc}".replace(str(path), ".").split())[:200]
        raise _bad("tokenizer", f"transformers cannot load it ({message})") from None
    if vocab:
        token, top = max(vocab.items(), key=lambda kv: kv[1])
        _check_id("tokenizer", f"token {token[:40]!r} as transformers loads it", top, vocab_size)
    for token_id in ids:
        _check_id("tokenizer", "a probe encoding as transformers loads it", int(token_id), vocab_size)
