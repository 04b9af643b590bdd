"""Receiving an object or part body into storage: stream, hash once (MD5 + CRC-64), write once, seal.

Owns the checks on an incoming body: Content-Length presence and the 5 GiB limit, Content-MD5 and a
client-supplied x-kss-checksum-crc64ecma, and the SigV4 payload hash (via the BodyReader). A failed
check removes the temp file; nothing half-received ever gets a name under data/.
Imports nothing else from ks3sync.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from ks3sync.localserver.assembly import PartSlot
from ks3sync.localserver.context import Context
from ks3sync.localserver.crc64 import crc64
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import ClientGone
from ks3sync.localserver.storage import StoredBody

MAX_SINGLE_PUT = 5 * 1024**3
BLOCK = 1 << 20  # bytes handed to the digest thread at a time


@dataclass(frozen=True, slots=True)
class Received:
    body: StoredBody
    size: int
    md5: bytes
    crc64: int

    @property
    def etag(self) -> str:
        return self.md5.hex()


def _expected_md5(ctx: Context) -> bytes | None:
    header = ctx.request.headers.get("content-md5")
    if header is None:
        return None
    try:
        digest = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.") from exc
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
    return digest


def declared_length(ctx: Context) -> int | None:
    """The payload length the request declares (None for a chunked body); raises on a bad header."""
    headers = ctx.request.headers
    # aws-chunked: Content-Length counts the framing; the payload's length is declared separately
    raw = headers.get("x-amz-decoded-content-length") if ctx.auth.streaming else headers.get("content-length")
    if raw is None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return None
        raise S3Error("MissingContentLength")
    try:
        length = int(raw)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "Content-Length is not an integer.") from exc
    if length > MAX_SINGLE_PUT:
        raise S3Error(
            "EntityTooLarge", extra={"ProposedSize": str(length), "MaxSizeAllowed": str(MAX_SINGLE_PUT)}
        )
    return length


class _Digester:
    """MD5, CRC-64 and the write of one body, fed lists of chunks in order (one caller at a time)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.md5 = hashlib.md5()  # noqa: S324 - the ETag is an MD5 by protocol, not a security measure
        self.crc = 0
        self.size = 0

    def absorb(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.md5.update(chunk)
            self.crc = crc64(chunk, self.crc)
        written = os.writev(self.fd, chunks)
        total = sum(len(chunk) for chunk in chunks)
        if written < total:  # a short write to a regular file: finish it the slow way
            rest = b"".join(chunks)[written:]
            while rest:
                rest = rest[os.write(self.fd, rest) :]
        self.size += total


def _check_digests(ctx: Context, digest: bytes, crc: int, expected_md5: bytes | None) -> None:
    if expected_md5 is not None and digest != expected_md5:
        raise S3Error("BadDigest" if ctx.amz else "InvalidDigest")
    crc_header = ctx.request.headers.get("x-kss-checksum-crc64ecma")
    if crc_header is not None and crc_header.strip() != str(crc):
        raise S3Error(
            "InvalidDigest",
            "The x-kss-checksum-crc64ecma you specified did not match the body.",
            extra={"ClientCRC64": crc_header, "ServerCRC64": str(crc)},
        )


async def _receive_inline(ctx: Context, declared: int, expected_md5: bytes | None) -> Received:
    data = await ctx.body.read_all(ctx.storage.inline_max)
    if len(data) != declared:
        raise S3Error("IncompleteBody")
    digest = hashlib.md5(data).digest()  # noqa: S324 - protocol ETag
    crc = crc64(data)
    _check_digests(ctx, digest, crc, expected_md5)
    return Received(ctx.storage.store_inline(data), len(data), digest, crc)


async def receive_body(ctx: Context, *, allow_inline: bool = True, slot: PartSlot | None = None) -> Received:
    """Stream the request body into a temp file (or a multipart part's `slot` in its upload's assembly
    file), hashing it once on the way, and seal it.

    Big bodies are hashed and written by a worker thread one block behind the socket (MD5 and write
    release the GIL), so receiving and digesting overlap on two cores; a small body is digested inline,
    and kept as a row when the storage allows it (`inline_max`, parts never).
    """
    expected_md5 = _expected_md5(ctx)
    declared = declared_length(ctx)
    storage = ctx.storage
    if slot is not None:
        if declared != slot.size:
            raise S3Error("IncompleteBody")
        return await _receive_into_slot(ctx, slot, expected_md5)
    if allow_inline and declared is not None and declared <= storage.inline_max:
        return await _receive_inline(ctx, declared, expected_md5)
    temp = storage.open_temp()
    sealed = False
    digester = _Digester(temp.fd)
    try:
        await _pump(ctx, digester, MAX_SINGLE_PUT, "EntityTooLarge")
        size = digester.size
        if declared is not None and size != declared:
            raise S3Error("IncompleteBody")
        digest = digester.md5.digest()
        crc = digester.crc
        _check_digests(ctx, digest, crc, expected_md5)
        stored = await storage.seal(temp)
        sealed = True
        return Received(stored, size, digest, crc)
    except (S3Error, ClientGone, OSError):
        if not sealed:
            storage.discard_temp(temp)
        raise


async def _pump(ctx: Context, digester: _Digester, limit: int, too_long: str) -> None:
    """Feed the body to the digester, a block at a time on a worker thread one block behind the socket;
    a body longer than ``limit`` raises S3Error(too_long) before its excess is written. Returns (or
    raises) only when the worker is done with the descriptor."""
    in_flight: asyncio.Future[None] | None = None
    try:
        pending: list[bytes] = []
        pending_size = 0
        received = 0
        async for chunk in ctx.body.chunks():
            pending.append(chunk)
            pending_size += len(chunk)
            received += len(chunk)
            if received > limit:
                raise S3Error(too_long)
            if pending_size >= BLOCK:
                if in_flight is not None:
                    await in_flight
                in_flight = ctx.storage.run_io(digester.absorb, pending)
                pending, pending_size = [], 0
        if in_flight is not None:
            await in_flight
            in_flight = None
        if pending:
            digester.absorb(pending)
    finally:
        if in_flight is not None:
            await asyncio.wait([in_flight])  # the worker must be done with the fd before it is closed


async def _receive_into_slot(ctx: Context, slot: PartSlot, expected_md5: bytes | None) -> Received:
    """receive_body for a part placed in its upload's assembly file: never more than the slot's size is
    written (the next part's region follows), and a failure leaves only unreferenced bytes behind. The
    caller closes the slot if this fails (``Storage.discard_slot``)."""
    digester = _Digester(slot.fd)
    await _pump(ctx, digester, slot.size, "IncompleteBody")
    if digester.size != slot.size:
        raise S3Error("IncompleteBody")
    digest = digester.md5.digest()
    _check_digests(ctx, digest, digester.crc, expected_md5)
    stored = await ctx.storage.seal_slot(slot)
    return Received(stored, digester.size, digest, digester.crc)
