"""Streaming multipart uploads straight to disk, with a size cap enforced while the bytes arrive.

uvicorn has no body limit and Starlette's form parser spools whole files before the handler runs, so
uploads are parsed here from ``request.stream()``: each file part goes to its own file in a fresh
staging directory, the running total is checked against the cap on every chunk (a client that sends
no ``Content-Length`` is stopped the same way), and the sha256 of each file is computed on the way.
Any failure removes the staging directory: nothing is left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

from service.errors import BadUploadError, PayloadTooLargeError

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_FIELD_BYTES = 4096

#: Called with each file name; raises BadUploadError (or a CheckpointError) for a name it refuses.
NameCheck = Callable[[str], None]


@dataclass
class StagedUpload:
    """Files written to ``dir``: name -> (size, sha256); small non-file fields by name."""

    dir: Path
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    total_bytes: int = 0

    def discard(self) -> None:
        """Delete the staging directory."""
        shutil.rmtree(self.dir, ignore_errors=True)


class _PartWriter:
    """Multipart callbacks that write file parts to disk and keep form fields in memory."""

    def __init__(self, staged: StagedUpload, allowed: NameCheck | None, max_files: int) -> None:
        self.staged, self.allowed, self.max_files = staged, allowed, max_files
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.fh: IO[bytes] | None = None
        self.name: str | None = None
        self.field_name: str | None = None
        self.field_buf = bytearray()
        self.size = 0
        self.hasher: Any = None

    def callbacks(self) -> MultipartCallbacks:
        """The parser's callbacks (a TypedDict that python-multipart declares for type checkers only)."""
        return {
            "on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers, self.header_field, self.header_value = {}, b"", b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        filename = params.get(b"filename")
        if filename is None:
            self.field_name = params.get(b"name", b"").decode("utf-8", "replace")[:100]
            self.field_buf = bytearray()
            return
        name = filename.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
        if not SAFE_NAME.match(name) or name in self.staged.files:
            raise BadUploadError(f"file name {name!r} is not allowed (plain names, each once)")
        if self.allowed is not None:
            self.allowed(name)
        if len(self.staged.files) >= self.max_files:
            raise BadUploadError(f"too many files (at most {self.max_files})")
        self.name, self.size, self.hasher = name, 0, hashlib.sha256()
        self.staged.files[name] = (0, "")
        self.fh = os.fdopen(os.open(self.staged.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.fh is not None:
            self.fh.write(chunk)
            self.hasher.update(chunk)
            self.size += len(chunk)
        elif self.field_name is not None:
            self.field_buf += chunk
            if len(self.field_buf) > MAX_FIELD_BYTES:
                raise BadUploadError(f"form field {self.field_name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.fh is not None and self.name is not None:
            self.fh.close()
            self.staged.files[self.name] = (self.size, self.hasher.hexdigest())
            self.fh, self.name = None, None
        elif self.field_name is not None:
            self.staged.fields[self.field_name] = self.field_buf.decode("utf-8", "replace")
            self.field_name = None

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary, or BadUploadError (415-style message) when the body is not multipart."""
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadUploadError("send the files as multipart/form-data (e.g. curl -F files=@config.json ...)")
    return boundary


async def stream_to_dir(
    chunks: AsyncIterator[bytes], content_type: str | None, content_length: str | None, staging: Path, max_bytes: int,
    *, allowed: NameCheck | None = None, max_files: int = 16
) -> StagedUpload:
    """Parse a multipart body from ``chunks`` into the new directory ``staging`` (removed on any error)."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadUploadError("Content-Length is not a number") from None
        if declared > max_bytes:
            raise PayloadTooLargeError(f"upload of {declared} bytes exceeds the cap of {max_bytes} bytes")
    boundary = boundary_of(content_type)
    staging.mkdir(mode=0o700, parents=True, exist_ok=False)
    staged = StagedUpload(dir=staging)
    writer = _PartWriter(staged, allowed, max_files)
    parser = MultipartParser(boundary, writer.callbacks())
    try:
        async for chunk in chunks:
            staged.total_bytes += len(chunk)
            if staged.total_bytes > max_bytes:
                raise PayloadTooLargeError(f"upload exceeds the cap of {max_bytes} bytes (stopped while streaming)")
            parser.write(chunk)
        parser.finalize()
        writer.close()
        if writer.name is not None or not staged.files:
            raise BadUploadError("the multipart body ended early or holds no file")
    except BaseException as exc:
        writer.close()
        staged.discard()
        if isinstance(exc, (BadUploadError, PayloadTooLargeError)):
            raise
        if isinstance(exc, (ValueError, UnicodeDecodeError)) or type(exc).__name__.endswith("ParseError"):
            raise BadUploadError(f"malformed multipart body ({type(exc).__name__})") from exc
        raise
    return staged
