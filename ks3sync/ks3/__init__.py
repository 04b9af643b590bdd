"""ks3sync.ks3: a complete KS3 protocol client on httpcore (httpx's transport). A leaf: imports nothing
else from ks3sync but ``ks3sync.digits`` (a leaf itself: the one parser of decimal numbers from the
wire). httpcore itself is imported when the first request is made (wire.py).

Modules, one job each:
  signing      KSS v2 string-to-sign and signature, key encoding (golden vectors in tests)
  addressing   endpoint parsing; path style / virtual host / custom domain; query encoding
  presign      presigned URLs
  checksums    CRC-64/XZ (fastcrc), crc64_combine, MD5 and multipart-ETag helpers
  bodies       re-iterable request bodies (bytes, file ranges streamed from disk)
  xml          parsing every response document, building request documents
  errors       the exception tree (drawn in its docstring) and error-response mapping
  retry        THE retry wrapper (exponential backoff, full jitter, Retry-After, injectable sleep)
  limiter      the adaptive number of small requests in flight (AIMD, 503/timeouts, Retry-After pauses)
  models       frozen result dataclasses
  objectinfo   response headers -> ObjectInfo; the streamed GetResponse
  proxies      which proxy carries a request (HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, or explicit)
  network      the sockets under httpcore: each request's deadline and head allowance, a pool-race guard
  pool         keep-alive httpcore.HTTPConnections per origin for direct routes
  wire         routes (the pool, or httpcore's HTTPProxy per proxy), TLS, the response wrapper,
               httpcore errors -> the tree
  transport    one signed exchange: ClientConfig, request assembly, deadlines, body caps, error answers
  client       the operations
"""

from .addressing import Addressing, Endpoint
from .bodies import Body, BytesBody, FileRangeBody
from .checksums import combine_parts, crc64, crc64_combine, multipart_etag
from .client import Client, copy_source
from .errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    KS3AuthError,
    KS3CertificateError,
    KS3Error,
    KS3IntegrityError,
    KS3ServiceError,
    KS3TransportError,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    SourceChangedError,
)
from .models import (
    BucketInfo,
    CompleteResult,
    CopyResult,
    DeleteResult,
    ListPage,
    ObjectInfo,
    ObjectSummary,
    PartInfo,
    PartResult,
    PutResult,
    UploadInfo,
)
from .objectinfo import GetResponse
from .presign import presign_url
from .proxies import ProxySettings, ProxyURL
from .retry import RetryPolicy
from .signing import sign_v2
from .transport import ClientConfig
from .xml import MalformedResponse

__all__ = [
    "Addressing",
    "Body",
    "BucketAlreadyExists",
    "BucketInfo",
    "BucketNotEmpty",
    "BytesBody",
    "Client",
    "ClientConfig",
    "CompleteResult",
    "CopyResult",
    "DeleteResult",
    "Endpoint",
    "FileRangeBody",
    "GetResponse",
    "KS3AuthError",
    "KS3CertificateError",
    "KS3Error",
    "KS3IntegrityError",
    "KS3ServiceError",
    "KS3TransportError",
    "ListPage",
    "MalformedResponse",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "ObjectInfo",
    "ObjectSummary",
    "PartInfo",
    "PartResult",
    "ProxySettings",
    "ProxyURL",
    "PutResult",
    "RetryPolicy",
    "SourceChangedError",
    "UploadInfo",
    "combine_parts",
    "copy_source",
    "crc64",
    "crc64_combine",
    "multipart_etag",
    "presign_url",
    "sign_v2",
]
