"""Object and bucket attributes taken from request headers: ACLs, storage classes, stored headers, names.

Owns the validation rules (canned ACL values, storage classes, bucket names, key limits), the mapping
between KS3 headers and their S3 (`x-amz-`) aliases, the ACL XML both ways and the anonymous-access
rules. Imports nothing else from ks3sync except the error type and the XML helpers.
"""

from __future__ import annotations

import re

from ks3sync.localserver import xmlio
from ks3sync.localserver.errors import S3Error

OWNER_ID = "1234567"
ALL_USERS_URIS = (
    "http://acs.ksyun.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AllUsers",
)

BUCKET_ACLS = frozenset({"private", "public-read", "public-read-write"})
OBJECT_ACLS = frozenset({"private", "public-read", "public-read-write"})
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "IA",
        "DEEP_IA",
        "ARCHIVE",
        "DEEP_COLD_ARCHIVE",
        "EXTREME_PL1",
        "EXTREME_PL2",
        "EXTREME_PL3",
    }
)
ARCHIVE_CLASSES = frozenset({"ARCHIVE", "DEEP_COLD_ARCHIVE"})
MAX_KEY_BYTES = 1024

# request header (lower case) -> response header name, stored with the object
SYSTEM_HEADERS = {
    "content-type": "Content-Type",
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "content-language": "Content-Language",
    "expires": "Expires",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def kss_header(headers: dict[str, str], name: str) -> str | None:
    """`x-kss-<name>`, or its S3 alias `x-amz-<name>`."""
    value = headers.get("x-kss-" + name)
    return value if value is not None else headers.get("x-amz-" + name)


def validate_bucket_name(name: str) -> None:
    # fullmatch: `$` would also match before a final newline, and 'abc\n' then broke the reply's headers
    if not _BUCKET_NAME.fullmatch(name) or name.startswith("kss") or "--" in name:
        raise S3Error("InvalidBucketName", extra={"BucketName": name})


def validate_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLong", extra={"MaxSizeAllowed": str(MAX_KEY_BYTES)})
    if "@base@" in key or "@style@" in key:
        raise S3Error("InvalidKey", "Keys must not contain '@base@' or '@style@'.")


def canned_acl(headers: dict[str, str], allowed: frozenset[str], default: str = "private") -> str:
    value = kss_header(headers, "acl")
    if value is None:
        return default
    if value not in allowed:
        raise S3Error(
            "InvalidArgument",
            f"Unsupported canned ACL {value!r}.",
            extra={"ArgumentName": "x-kss-acl", "ArgumentValue": value},
        )
    return value


def storage_class(headers: dict[str, str], default: str = "STANDARD") -> str:
    value = kss_header(headers, "storage-class")
    if value is None:
        return default
    if value not in STORAGE_CLASSES:
        raise S3Error(
            "InvalidStorageClass",
            f"Unsupported storage class {value!r}.",
            extra={"StorageClassRequested": value},
        )
    return value


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    """System headers and user metadata to keep with an object; metadata names lower-cased, KS3-named."""
    stored = {
        response: headers[request] for request, response in SYSTEM_HEADERS.items() if request in headers
    }
    stored.setdefault("Content-Type", DEFAULT_CONTENT_TYPE)
    if "Content-Encoding" in stored:  # aws-chunked describes the upload's framing, not the object
        encodings = [e.strip() for e in stored["Content-Encoding"].split(",") if e.strip() != "aws-chunked"]
        if encodings:
            stored["Content-Encoding"] = ", ".join(encodings)
        else:
            del stored["Content-Encoding"]
    for name, value in headers.items():
        if name.startswith("x-kss-meta-"):
            stored[name] = value
        elif name.startswith("x-amz-meta-"):
            stored["x-kss-meta-" + name[len("x-amz-meta-") :]] = value
    sse = kss_header(headers, "server-side-encryption")
    if sse:
        stored["x-kss-server-side-encryption"] = sse
    tagging = kss_header(headers, "tagging")
    if tagging:
        stored["@tagging"] = tagging
    return stored


def response_headers(stored: dict[str, str], amz: bool) -> list[tuple[str, str]]:
    """Stored headers as sent back: `x-kss-*` lower-case, or `x-amz-*` for S3-dialect clients."""
    out = []
    for name, value in stored.items():
        if name.startswith("@"):
            continue
        if amz and name.startswith("x-kss-"):
            name = "x-amz-" + name[len("x-kss-") :]
        out.append((name, value))
    return out


def anonymous_may_read(bucket_acl: str, object_acl: str | None) -> bool:
    return object_acl in ("public-read", "public-read-write") or bucket_acl in (
        "public-read",
        "public-read-write",
    )


def anonymous_may_write(bucket_acl: str) -> bool:
    return bucket_acl == "public-read-write"


def require_owner(anonymous: bool) -> None:
    if anonymous:
        raise S3Error("AccessDenied", "Anonymous access is forbidden for this operation.")


# ------------------------------------------------------------ ACL documents


def _grant(grantee: str, permission: str) -> str:
    return f"<Grant>{grantee}<Permission>{permission}</Permission></Grant>"


def acl_document(acl: str) -> bytes:
    owner = f"<ID>{OWNER_ID}</ID><DisplayName>{OWNER_ID}</DisplayName>"
    xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    grants = [_grant(f'<Grantee {xsi} xsi:type="CanonicalUser">{owner}</Grantee>', "FULL_CONTROL")]
    all_users = f'<Grantee {xsi} xsi:type="Group"><URI>{ALL_USERS_URIS[0]}</URI></Grantee>'
    if acl in ("public-read", "public-read-write"):
        grants.append(_grant(all_users, "READ"))
    if acl == "public-read-write":
        grants.append(_grant(all_users, "WRITE"))
    return xmlio.document(
        f'<AccessControlPolicy xmlns="{xmlio.S3_NAMESPACE}"><Owner>{owner}</Owner>'
        f"<AccessControlList>{''.join(grants)}</AccessControlList></AccessControlPolicy>"
    )


def acl_from_document(body: bytes, allowed: frozenset[str]) -> str:
    """The canned ACL equivalent to an AccessControlPolicy: what AllUsers may do decides it."""
    root = xmlio.parse(body, "AccessControlPolicy")
    public: set[str] = set()
    for grant in root.iter("Grant"):
        grantee = grant.find("Grantee")
        uri = xmlio.child_text(grantee, "URI") if grantee is not None else None
        permission = xmlio.child_text(grant, "Permission")
        if uri in ALL_USERS_URIS and permission:
            public.add(permission)
    if "WRITE" in public or "FULL_CONTROL" in public:
        acl = "public-read-write"
    elif "READ" in public:
        acl = "public-read"
    else:
        acl = "private"
    if acl not in allowed:
        raise S3Error("InvalidArgument", f"ACL {acl!r} is not allowed here.")
    return acl
