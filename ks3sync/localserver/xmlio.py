"""XML in and out for the local server: tiny builders for KS3 response bodies, parsers for request bodies.

Responses are built as text (fast, and the element order the SDK's SAX parsers expect is explicit);
request bodies are parsed with ElementTree after a size check and a refusal of DOCTYPEs, ignoring namespaces (S3 tools send the
S3 namespace, the SDK sends none). Imports nothing else from ks3sync except the error type.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from functools import lru_cache
from urllib.parse import quote
from xml.sax.saxutils import escape

from ks3sync.localserver.errors import S3Error

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 2 * 1024 * 1024


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso8601(timestamp: float) -> str:
    """`2024-03-05T08:00:00.000Z`: the form KS3 uses in XML bodies (cached per second: listings repeat)."""
    seconds = int(timestamp)
    millis = int((timestamp - seconds) * 1000)
    return f"{_iso_seconds(seconds)}.{millis:03d}Z"


def http_date(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)


def text(value: str) -> str:
    return escape(value)


def url_text(value: str) -> str:
    """`encoding-type=url`: percent-encoded with %20 for space, '/' kept."""
    return quote(value.encode("utf-8"), safe="/")


def element(name: str, value: str | int | None) -> str:
    if value is None:
        return f"<{name}></{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def document(body: str) -> bytes:
    return (XML_DECLARATION + body).encode("utf-8")


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def refused_construct(body: bytes) -> str | None:
    """Why `body` is refused before it is parsed, or None. A document type declaration (entity
    definitions, external references) is nothing an S3 request body needs and everything an attack
    does; the byte search finds it in every encoding expat reads except UTF-16/32, so those (which S3
    bodies never use) are refused too (pyexpat itself refuses every other non-ASCII-compatible one)."""
    head = body[:4]
    if b"\x00" in head or head.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "The XML body must be UTF-8."
    if b"<!DOCTYPE" in body:
        return "Document type declarations are not allowed."
    return None


def parse(body: bytes, expected_root: str) -> ET.Element:
    if len(body) > MAX_XML_BODY:
        raise S3Error("MalformedXML", "The XML body is too large.")
    refused = refused_construct(body)
    if refused is not None:
        raise S3Error("MalformedXML", refused)
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: an unknown declared encoding
        raise S3Error("MalformedXML") from exc
    for node in root.iter():
        node.tag = _local_name(node.tag)
    if root.tag != expected_root:
        raise S3Error("MalformedXML", f"Expected a <{expected_root}> document, got <{root.tag}>.")
    return root


def child_text(node: ET.Element, name: str) -> str | None:
    found = node.find(name)
    if found is None:
        return None
    return found.text or ""
