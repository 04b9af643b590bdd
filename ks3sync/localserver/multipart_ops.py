"""Multipart uploads: initiate, upload part (and part copy), list parts, complete, abort.

Parts are written in place in their upload's assembly file when they can be (assembly.py), which Complete
then renames into the object; otherwise they are bodies of their own that Complete concatenates, in kernel
space and once, into the final object; its ETag is md5(part md5s)-N and its CRC-64 is combined from the parts'
CRCs. Imports nothing else from ks3sync.
"""

from __future__ import annotations

import hashlib
import os
import re

from ks3sync.localserver import assembly, policy, xmlio
from ks3sync.localserver.bucket_ops import xml_response
from ks3sync.localserver.context import Context
from ks3sync.localserver.crc64 import combine, crc64
from ks3sync.localserver.errors import S3Error
from ks3sync.localserver.exchange import Response
from ks3sync.localserver.ingest import declared_length, receive_body
from ks3sync.localserver.object_ops import readable_source
from ks3sync.localserver.request import bounded_int
from ks3sync.localserver.storage import (
    ObjectRecord,
    PartRecord,
    Storage,
    StoredBody,
    TempBody,
    UploadRecord,
    is_inline,
)

MIN_PART_SIZE = 100 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PART_NUMBER = 10_000
# how long a repeated Complete is answered like the first (S3 keeps no documented window; a client
# retrying a lost answer does so within seconds, and 15 minutes is how long a signed request stays valid)
COMPLETE_REPLAY_SECONDS = 15 * 60
_OWNER = f"<ID>{policy.OWNER_ID}</ID><DisplayName>{policy.OWNER_ID}</DisplayName>"
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)", re.ASCII)


def _writable_bucket(ctx: Context) -> None:
    bucket = ctx.storage.require_bucket(ctx.bucket)
    if ctx.auth.anonymous and not policy.anonymous_may_write(bucket.acl):
        raise S3Error("AccessDenied")


def _upload(ctx: Context) -> UploadRecord:
    _writable_bucket(ctx)
    return ctx.storage.get_upload(ctx.bucket, ctx.key, ctx.request.arg("uploadId") or "")


def _open_upload(ctx: Context, upload_id: str) -> UploadRecord | None:
    """The upload if it is still open; None when it is unknown or finished."""
    try:
        return ctx.storage.get_upload(ctx.bucket, ctx.key, upload_id)
    except S3Error as error:
        if error.code != "NoSuchUpload":
            raise
        return None


def _part_number(ctx: Context) -> int:
    raw = ctx.request.arg("partNumber") or ""
    if not (raw.isascii() and raw.isdigit()) or not 1 <= bounded_int(raw) <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}.",
            extra={"ArgumentName": "partNumber", "ArgumentValue": raw[:40]},
        )
    return int(raw)


async def initiate(ctx: Context) -> Response:
    bucket = ctx.storage.require_bucket(ctx.bucket)
    if ctx.auth.anonymous and not policy.anonymous_may_write(bucket.acl):
        raise S3Error("AccessDenied")
    policy.validate_key(ctx.key)
    await ctx.body.drain()
    headers = ctx.request.headers
    upload = ctx.storage.create_upload(
        ctx.bucket,
        ctx.key,
        policy.storage_class(headers),
        policy.canned_acl(headers, policy.OBJECT_ACLS),
        policy.stored_headers(headers),
    )
    # The SDK addresses every later request to the <Key> echoed here: it must be the exact key.
    return xml_response(
        f'<InitiateMultipartUploadResult xmlns="{xmlio.S3_NAMESPACE}"><Bucket>{xmlio.text(ctx.bucket)}</Bucket>'
        f"<Key>{xmlio.text(ctx.key)}</Key><UploadId>{upload.upload_id}</UploadId></InitiateMultipartUploadResult>"
    )


def _store_part(
    ctx: Context, upload_id: str, number: int, size: int, etag: str, crc: int, data_id: str
) -> None:
    if not ctx.storage.upload_exists(upload_id):  # aborted or completed while the part was arriving
        ctx.storage.remove_data([data_id])
        raise S3Error("NoSuchUpload", extra={"UploadId": upload_id})
    replaced = ctx.storage.put_part(PartRecord(upload_id, number, size, etag, crc, ctx.now(), data_id))
    if replaced:
        ctx.storage.remove_data([replaced])


async def upload_part(ctx: Context) -> Response:
    upload = _upload(ctx)
    number = _part_number(ctx)
    storage = ctx.storage
    # In place in the upload's assembly file when possible, so Complete can rename instead of copy.
    slot = storage.open_part_slot(upload.upload_id, number, declared_length(ctx))
    try:
        received = await receive_body(ctx, allow_inline=False, slot=slot)
        _store_part(
            ctx, upload.upload_id, number, received.size, received.etag, received.crc64, received.body.data_id
        )
    finally:
        if slot is not None:
            storage.discard_slot(slot)  # closes the descriptor of a part that failed; no-op once sealed
            # Only now: until the row exists, the claim keeps a second copy of the part out of its region.
            storage.placements.release(upload.upload_id, number)
    # The CRC header on every part is mandatory for the SDK (complete_upload does int() on it).
    return Response(200, [("ETag", f'"{received.etag}"'), ("x-kss-checksum-crc64ecma", str(received.crc64))])


def _copy_range(
    storage: Storage, source_id: str, first: int, length: int, temp: TempBody, inline: bytes | None
) -> tuple[str, int]:
    """Copy bytes [first, first+length) of a body into `temp`, hashing them. Runs in a worker thread."""
    md5 = hashlib.md5()  # noqa: S324 - protocol ETag
    crc = 0
    if inline is not None:
        block = inline[first : first + length]
        md5.update(block)
        os.write(temp.fd, block)
        return md5.hexdigest(), crc64(block)
    with open(storage.data_path(source_id), "rb") as source:
        source.seek(first)
        remaining = length
        while remaining:
            block = source.read(min(remaining, 1 << 20))
            if not block:
                raise OSError(f"source body {source_id} is shorter than its record")
            md5.update(block)
            crc = crc64(block, crc)
            os.write(temp.fd, block)
            remaining -= len(block)
    return md5.hexdigest(), crc


async def upload_part_copy(ctx: Context) -> Response:
    upload = _upload(ctx)
    number = _part_number(ctx)
    await ctx.body.drain()
    source = readable_source(ctx)
    first, length = 0, source.size
    range_header = policy.kss_header(ctx.request.headers, "copy-source-range")
    if range_header:
        match = _COPY_RANGE.fullmatch(range_header.strip())
        if match is None:
            raise S3Error("InvalidArgument", "x-kss-copy-source-range must be bytes=first-last.")
        first, last = bounded_int(match.group(1)), bounded_int(match.group(2))
        if last < first or last >= source.size:
            raise S3Error("InvalidRange", extra={"ActualObjectSize": str(source.size)})
        length = last - first + 1
    if length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge")
    storage = ctx.storage
    temp = storage.open_temp()
    try:
        inline = storage.read_inline(source.data_id) if is_inline(source.data_id) else None
        etag, crc = await storage.run_io(_copy_range, storage, source.data_id, first, length, temp, inline)
        stored = await storage.seal(temp)
    except OSError:
        storage.discard_temp(temp)
        raise
    _store_part(ctx, upload.upload_id, number, length, etag, crc, stored.data_id)
    now = ctx.now()
    response = xml_response(
        f"<CopyPartResult><LastModified>{xmlio.iso8601(now)}</LastModified><ETag>&quot;{etag}&quot;</ETag>"
        f"<ChecksumCRC64ECMA>{crc}</ChecksumCRC64ECMA></CopyPartResult>"
    )
    response.headers.append(("x-kss-checksum-crc64ecma", str(crc)))
    return response


async def list_parts(ctx: Context) -> Response:
    upload = _upload(ctx)
    marker = ctx.int_arg("part-number-marker", 0, 0, MAX_PART_NUMBER)
    # Without max-parts every part is returned: the SDK completes from one unpaginated ListParts.
    explicit = ctx.request.arg("max-parts")
    max_parts = ctx.int_arg("max-parts", MAX_PART_NUMBER, 0, 1000) if explicit else MAX_PART_NUMBER
    parts = ctx.storage.list_parts(upload.upload_id, marker, max_parts + 1)
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    next_marker = parts[-1].part_number if parts else marker
    encode = xmlio.url_text if ctx.request.arg("encoding-type") == "url" else xmlio.text
    body = [
        f'<ListPartsResult xmlns="{xmlio.S3_NAMESPACE}"><Bucket>{xmlio.text(ctx.bucket)}</Bucket>',
        f"<Key>{encode(ctx.key)}</Key><UploadId>{upload.upload_id}</UploadId>",
        f"<Initiator>{_OWNER}</Initiator><Owner>{_OWNER}</Owner><StorageClass>{upload.storage_class}</StorageClass>",
        f"<PartNumberMarker>{marker}</PartNumberMarker><NextPartNumberMarker>{next_marker}</NextPartNumberMarker>",
        f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    body.extend(
        f"<Part><PartNumber>{p.part_number}</PartNumber><LastModified>{xmlio.iso8601(p.mtime)}</LastModified>"
        f"<ETag>&quot;{p.etag}&quot;</ETag><Size>{p.size}</Size><ChecksumCRC64ECMA>{p.crc64}</ChecksumCRC64ECMA></Part>"
        for p in parts
    )
    body.append("</ListPartsResult>")
    return xml_response("".join(body))


def _requested_parts(body: bytes) -> list[tuple[int, str]]:
    root = xmlio.parse(body, "CompleteMultipartUpload")
    requested = []
    for node in root.findall("Part"):
        number_text = xmlio.child_text(node, "PartNumber")
        etag = xmlio.child_text(node, "ETag")
        number_text = (number_text or "").strip()
        if etag is None or not (number_text.isascii() and number_text.isdigit()):
            raise S3Error("MalformedXML", "Every <Part> needs a numeric <PartNumber> and an <ETag>.")
        requested.append((bounded_int(number_text), etag.strip().strip('"')))
    if not requested:
        raise S3Error("MalformedXML", "The list of parts is empty.")
    if len(requested) > MAX_PART_NUMBER:
        raise S3Error("MalformedXML", f"A multipart upload has at most {MAX_PART_NUMBER} parts.")
    return requested


def _parts_digest(requested: list[tuple[int, str]]) -> str:
    return hashlib.sha256("".join(f"{number}:{etag}\n" for number, etag in requested).encode()).hexdigest()


async def complete(ctx: Context) -> Response:
    _writable_bucket(ctx)
    upload_id = ctx.request.arg("uploadId") or ""
    if _open_upload(ctx, upload_id) is None and ctx.storage.completed_upload(upload_id) is None:
        # unknown, aborted, or completed and forgotten: answered before reading the body
        raise S3Error("NoSuchUpload", extra={"UploadId": upload_id})
    body = await ctx.body.read_all(xmlio.MAX_XML_BODY)
    requested = _requested_parts(body)
    async with ctx.storage.placements.completing(upload_id):
        # One Complete of an upload at a time (the first takes the assembly file): a duplicate waits,
        # then finds the upload completed, as a retry after a lost answer does.
        upload = _open_upload(ctx, upload_id)
        if upload is None:
            return _completed_again(ctx, upload_id, requested)
        return await _complete(ctx, upload, requested)


def _completed_again(ctx: Context, upload_id: str, requested: list[tuple[int, str]]) -> Response:
    """A repeated Complete of an upload that is already complete gets the first answer again (S3 does;
    a client whose first answer was lost must not see NoSuchUpload for an upload that succeeded) - but
    only for the same part list, within COMPLETE_REPLAY_SECONDS, and while the key still holds the
    object that upload made. Otherwise NoSuchUpload, as KS3 documents for every finished upload."""
    done = ctx.storage.completed_upload(upload_id)
    current = ctx.storage.get_object(ctx.bucket, ctx.key)
    if (
        done is None
        or done.bucket != ctx.bucket
        or done.key != ctx.key
        or done.parts != _parts_digest(requested)
        or ctx.now() - done.completed > COMPLETE_REPLAY_SECONDS
        or current is None
        or current.data_id != done.data_id
    ):
        raise S3Error("NoSuchUpload", extra={"UploadId": upload_id})
    return _complete_response(ctx, done.etag, done.crc64)


async def _complete(ctx: Context, upload: UploadRecord, requested: list[tuple[int, str]]) -> Response:
    stored = {part.part_number: part for part in ctx.storage.list_parts(upload.upload_id)}
    chosen: list[PartRecord] = []
    previous = 0
    for number, etag in requested:
        if number <= previous:
            raise S3Error("InvalidPartOrder", extra={"UploadId": upload.upload_id})
        previous = number
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise S3Error(
                "InvalidPart", extra={"UploadId": upload.upload_id, "PartNumber": str(number), "ETag": etag}
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                extra={
                    "PartNumber": str(part.part_number),
                    "ProposedSize": str(part.size),
                    "MinSizeAllowed": str(MIN_PART_SIZE),
                },
            )
    storage = ctx.storage
    sealed = await _assemble(storage, upload.upload_id, chosen)
    md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
    etag = f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}"  # noqa: S324 - protocol ETag
    crc = 0
    for part in chosen:
        crc = combine(crc, part.crc64, part.size)
    record = ObjectRecord(
        bucket=ctx.bucket,
        key=ctx.key,
        size=sum(p.size for p in chosen),
        etag=etag,
        crc64=crc,
        mtime=ctx.now(),
        storage_class=upload.storage_class,
        acl=upload.acl,
        headers=upload.headers,
        data_id=sealed.data_id,
        restore_state="frozen" if upload.storage_class in policy.ARCHIVE_CLASSES else None,
    )
    if not storage.upload_exists(upload.upload_id):  # aborted while assembling
        storage.remove_data([sealed.data_id])
        raise S3Error("NoSuchUpload", extra={"UploadId": upload.upload_id})
    storage.remove_data(
        storage.finish_upload(
            upload.upload_id,
            record,
            _parts_digest(requested),
            forget_before=record.mtime - COMPLETE_REPLAY_SECONDS,
        )
    )
    return _complete_response(ctx, etag, crc)


def _complete_response(ctx: Context, etag: str, crc: int) -> Response:
    host = ctx.request.headers.get("host", "127.0.0.1")
    location = f"http://{host}/{ctx.bucket}/{xmlio.url_text(ctx.key)}"
    response = xml_response(
        f'<CompleteMultipartUploadResult xmlns="{xmlio.S3_NAMESPACE}"><Location>{xmlio.text(location)}</Location>'
        f"<Bucket>{xmlio.text(ctx.bucket)}</Bucket><Key>{xmlio.text(ctx.key)}</Key>"
        f"<ETag>&quot;{etag}&quot;</ETag><ChecksumCRC64ECMA>{crc}</ChecksumCRC64ECMA>"
        "</CompleteMultipartUploadResult>"
    )
    response.headers.append(("x-kss-checksum-crc64ecma", str(crc)))
    return response


async def _assemble(storage: Storage, upload_id: str, chosen: list[PartRecord]) -> StoredBody:
    """The object's body from its parts: the upload's assembly file itself when the parts placed in it lie
    where the object needs them (only the others are copied in), else a copy of every part."""
    if storage.placements.close(upload_id):
        parts = [(p.data_id, p.size) for p in chosen]
        offsets = assembly.in_place_layout(upload_id, [p.data_id for p in chosen], [p.size for p in chosen])
        if offsets is not None:
            return await storage.run_io(storage.adopt_assembly, upload_id, parts, offsets)
    temp = storage.open_temp()
    try:
        await storage.run_io(storage.concatenate, [p.data_id for p in chosen], temp)
        return await storage.seal(temp)
    except OSError:
        storage.discard_temp(temp)
        raise


async def abort(ctx: Context) -> Response:
    upload = _upload(ctx)
    ctx.storage.remove_data(ctx.storage.finish_upload(upload.upload_id, None))
    return Response(204)
