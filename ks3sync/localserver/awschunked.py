"""Decoding `aws-chunked` request bodies (SigV4 streaming uploads), verifying each chunk's signature.

Two framings are accepted:
  STREAMING-AWS4-HMAC-SHA256-PAYLOAD     `<hex size>;chunk-signature=<sig>\\r\\n<data>\\r\\n` ... ending with a
                                         signed zero-size chunk; every signature chains from the previous
                                         one (the seed is the request's Authorization signature).
  STREAMING-UNSIGNED-PAYLOAD-TRAILER     `<hex size>\\r\\n<data>\\r\\n` ... `0\\r\\n`, trailer lines (e.g.
                                         x-amz-checksum-crc32), blank line. Trailers are read and ignored.
The decoder is fed the raw body as it arrives and returns the payload bytes. Imports nothing else from
ks3sync except the error type.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from ks3sync.localserver.errors import S3Error

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class ChunkSigning:
    """What chunk signatures are checked against; the key never reaches a repr."""

    signing_key: bytes = field(repr=False)
    amz_date: str
    scope: str
    seed_signature: str


def _malformed(detail: str) -> S3Error:
    return S3Error("IncompleteBody", f"Malformed aws-chunked body: {detail}.")


class ChunkedDecoder:
    def __init__(self, mode: str, signing: ChunkSigning | None) -> None:
        if mode == SIGNED and signing is None:
            raise ValueError("signed aws-chunked bodies need the signing context")
        self._mode = mode
        self._signing = signing
        self._previous = signing.seed_signature if signing else ""
        self._buffer = bytearray()
        self._state = "size"  # size -> data -> (size ...) -> trailer -> done
        self._size = 0
        self._signature = ""
        self.decoded = 0

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, raw: bytes | bytearray) -> bytes:
        self._buffer += raw
        out = bytearray()
        while True:
            if self._state == "size":
                line = self._take_line()
                if line is None:
                    break
                self._start_chunk(line)
            elif self._state == "data":
                if len(self._buffer) < self._size + 2:
                    break
                data = bytes(self._buffer[: self._size])
                if self._buffer[self._size : self._size + 2] != b"\r\n":
                    raise _malformed("chunk data not followed by CRLF")
                del self._buffer[: self._size + 2]
                self._verify(data)
                out += data
                self.decoded += len(data)
                self._state = (
                    "size" if self._size else ("trailer" if self._mode == UNSIGNED_TRAILER else "done")
                )
            elif self._state == "trailer":
                line = self._take_line()
                if line is None:
                    break
                if line == b"":
                    self._state = "done"
            else:
                if self._buffer.strip():
                    raise _malformed("bytes after the final chunk")
                self._buffer.clear()
                break
        return bytes(out)

    def _take_line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end == -1:
            if len(self._buffer) > _MAX_LINE:
                raise _malformed("chunk header line too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text, _, extension = line.partition(b";")
        try:
            self._size = int(size_text, 16)
        except ValueError as exc:
            raise _malformed(f"bad chunk size {size_text[:20]!r}") from exc
        if self._size < 0:
            raise _malformed("negative chunk size")
        if self._mode == SIGNED:
            name, _, value = extension.partition(b"=")
            if name.strip() != b"chunk-signature" or not value:
                raise _malformed("a chunk lacks its chunk-signature")
            self._signature = value.strip().decode("ascii", "replace")
        if self._mode == UNSIGNED_TRAILER and self._size == 0:
            self._state = "trailer"  # `0\r\n` then trailer lines: no data CRLF of its own
            return
        self._state = "data"

    def _verify(self, data: bytes) -> None:
        signing = self._signing
        if self._mode != SIGNED or signing is None:
            return
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                signing.amz_date,
                signing.scope,
                self._previous,
                _EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        expected = hmac.new(signing.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), self._signature.encode()):
            raise S3Error(
                "SignatureDoesNotMatch", "A chunk signature of the aws-chunked body does not match."
            )
        self._previous = self._signature

    def finish(self) -> None:
        if self._state != "done":
            raise _malformed("the body ended before its final chunk")
