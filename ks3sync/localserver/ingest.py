"""Receiving an object or part body into storage: stream, hash once (MD5 + CRC-64), write once, seal.

Owns the checks on an incoming body: Content-Length presence and the 5 GiB limit, Content-MD5 and a
client-supplied x-kss-checksum-crc64ecma, and the SigV4 payload hash (via the BodyReader). A failed
check removes the temp file; nothing half-received ever gets a name under data/.
Imports nothing else from ks3sync.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from ks3sync.localserver.context import Context
from ks3sync.localserver.crc64 import crc64
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import ClientGone
from ks3sync.localserver.storage import StoredBody

MAX_SINGLE_PUT = 5 * 1024**3


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


def _declared_length(ctx: Context) -> int | None:
    headers = ctx.request.headers
    raw = headers.get("content-length")
    if raw is None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return None
        raise S3Error("MissingContentLength")
    try:
        length = int(raw)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "Content-Length is not an integer.") from exc
    if length > MAX_SINGLE_PUT:
        raise S3Error("EntityTooLarge", extra={"ProposedSize": str(length), "MaxSizeAllowed": str(MAX_SINGLE_PUT)})
    return length


async def receive_body(ctx: Context) -> Received:
    expected_md5 = _expected_md5(ctx)
    declared = _declared_length(ctx)
    crc_header = ctx.request.headers.get("x-kss-checksum-crc64ecma")
    storage = ctx.storage
    temp = storage.open_temp()
    sealed = False
    try:
        md5 = hashlib.md5()  # noqa: S324 - the ETag is an MD5 by protocol, not a security measure
        crc = 0
        size = 0
        async for block in ctx.body.chunks():
            md5.update(block)
            crc = crc64(block, crc)
            os.write(temp.fd, block)
            size += len(block)
            if size > MAX_SINGLE_PUT:
                raise S3Error("EntityTooLarge")
        if declared is not None and size != declared:
            raise S3Error("IncompleteBody")
        digest = md5.digest()
        if expected_md5 is not None and digest != expected_md5:
            raise S3Error("BadDigest" if ctx.amz else "InvalidDigest")
        if crc_header is not None and crc_header.strip() != str(crc):
            raise S3Error("InvalidDigest", "The x-kss-checksum-crc64ecma you specified did not match the body.",
                          extra={"ClientCRC64": crc_header, "ServerCRC64": str(crc)})
        stored = await storage.seal(temp)
        sealed = True
        return Received(stored, size, digest, crc)
    except (S3Error, ClientGone, OSError):
        if not sealed:
            storage.discard_temp(temp)
        raise
