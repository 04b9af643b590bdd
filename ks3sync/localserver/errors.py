"""KS3 error responses raised by the local server's handlers.

Owns the one exception type handlers raise (`S3Error`) and the catalogue of codes with their HTTP
statuses and default messages (protocol §5). Imports nothing else from ks3sync.
"""

from __future__ import annotations

# code -> (HTTP status, default message)
CATALOGUE: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "InvalidAccessKeyId": (403, "The KS3 access key Id you provided does not exist in our records."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided.",
    ),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the server's time is too large.",
    ),
    "InvalidObjectState": (403, "The operation is not valid for the object's storage class or state."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchUpload": (404, "The specified multipart upload does not exist."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "RestoreAlreadyInProgress": (409, "Object restore is already in progress."),
    "KeyAlreadyExists": (409, "The key already exists and x-kss-forbid-overwrite is set."),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidKey": (400, "The specified key is not valid."),
    "KeyTooLong": (400, "Your key is too long."),
    "InvalidDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed object size."),
    "InvalidPart": (400, "One or more of the specified parts could not be found or its ETag did not match."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order or a part is missing."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "InvalidRequest": (400, "Invalid Request"),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate against our schema."),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length header.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within the timeout period.",
    ),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed."),
    "InvalidURI": (400, "Could not parse the specified URI."),
    "MissingSecurityHeader": (400, "Your request is missing a required header."),
    "InvalidRange": (416, "The requested range is not satisfiable."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "PreconditionFailed": (412, "At least one of the preconditions you specified did not hold."),
    "NotModified": (304, "Not Modified"),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "ServiceUnavailable": (503, "Service is unable to handle request."),
    "SlowDown": (503, "Please reduce your request rate."),
    "NotImplemented": (501, "A header or query you provided implies functionality that is not implemented."),
}


class S3Error(Exception):
    """A KS3 error: the handler stops, the app answers with the error XML (or headers only for HEAD)."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        status: int | None = None,
        extra: dict[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        default_status, default_message = CATALOGUE.get(code, (400, code))
        self.code = code
        self.status = status if status is not None else default_status
        self.message = message if message is not None else default_message
        # extra elements for the error body (e.g. StringToSign); never secrets
        self.extra = extra or {}
        self.headers = headers or []
        super().__init__(f"{self.status} {code}: {self.message}")
