"""A fast path for the ``<Contents>`` entries of a ListObjects page.

A no-change mirror of 100,000 files spends most of its listing time in ElementTree building 1.2 million
elements (100 pages x 1,000 ``<Contents>`` of ~12 elements each) that are read once and dropped. The
entries of a listing are machine-written in one fixed layout (KS3's and local-server's: Key,
LastModified, ETag, Size, Owner, StorageClass), so this module reads a page's run of entries with one
regular expression, and only when the whole run has exactly that layout:

- every ``<Contents>`` between the first and the last is matched, with only whitespace between them;
- text holds no markup, only the five predefined entities or numeric character references (anything
  else, e.g. a bare ``&`` or an undefined entity, sends the page to ElementTree, which rejects it);
- the page is UTF-8 (the declaration names UTF-8 or no encoding) without carriage returns (which XML
  would normalise), CDATA, comments or a DOCTYPE.

Otherwise ``split_contents`` returns ``None`` and the caller parses the page with ElementTree. The
page's envelope (IsTruncated, NextMarker, CommonPrefixes, EncodingType) is always read by ElementTree,
from the page with the run cut out. ``tests/ks3/test_xml_contents.py`` checks both paths agree.

Imports nothing from ks3sync (the protocol client is a leaf).
"""

from __future__ import annotations

import re

_TEXT = r"([^<]*)"
_ENTRY = (
    r"<Contents>\s*<Key>"
    + _TEXT
    + r"</Key>\s*<LastModified>"
    + _TEXT
    + r"</LastModified>\s*<ETag>"
    + _TEXT
    + r"</ETag>\s*<Size>"
    + _TEXT
    + r"</Size>\s*"
    r"(?:<Owner>\s*(?:<ID>[^<]*</ID>\s*)?(?:<DisplayName>[^<]*</DisplayName>\s*)?</Owner>\s*)?"
    r"(?:<StorageClass>" + _TEXT + r"</StorageClass>\s*)?</Contents>"
)
_ENTRY_RE = re.compile(_ENTRY)
_RUN_RE = re.compile(r"(?:\s*" + re.sub(r"\((?!\?)", "(?:", _ENTRY) + r")*\s*")  # same, nothing captured
_ENTITY = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


# The text of one entry's fields, entities replaced: (key, last modified, ETag, size, storage class),
# the class "" when absent. Plain tuples, as ``findall`` makes them: a page holds 1,000 entries and a
# no-change pass of 100,000 files reads every one, so no per-entry object is built here.
Entry = tuple[str, str, str, str, str]


def split_contents(body: bytes) -> tuple[list[Entry], bytes] | None:
    """(the page's entries in order, the page without them), or None when the page is not one this
    fast path reads exactly as ElementTree would."""
    declared = _DECLARED_ENCODING.match(body)
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # CDATA, comments, a DOCTYPE or entity declarations all start "<!"; XML would normalise "\r".
    # Two scans of the page, not one per construct (a page is ~300 kB).
    if "<!" in text or "\r" in text:
        return None
    first = text.find("<Contents>")
    if first < 0:
        return [], body
    last = text.rfind("</Contents>") + len("</Contents>")
    run = text[first:last]
    if _RUN_RE.fullmatch(run) is None:
        return None  # another layout, or something between the entries: only ElementTree reads it right
    # Quoted ETags make "&quot;" the one entity of nearly every entry. The run holds no attributes, so
    # a '"' cannot change how it parses: replace it once for the run, not field by field.
    if "&" in run:
        run = run.replace("&quot;", '"')
    found: list[Entry] = _ENTRY_RE.findall(run)
    if "&" in run and any("&" in field for entry in found for field in entry):
        unescaped = [tuple(_unescape(field) for field in entry) for entry in found]
        if any(field is None for entry in unescaped for field in entry):
            return None
        found = unescaped  # type: ignore[assignment]  # no None left: checked just above
    return found, (text[:first] + text[last:]).encode("utf-8")


def _unescape(text: str) -> str | None:
    """Text with XML's predefined entities and character references replaced; None for anything
    ElementTree would reject (an undefined entity, a bare ``&``, a character XML does not allow)."""
    if "&" not in text:
        return text
    if "&" in _ENTITY.sub("", text):
        return None
    failed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal failed
        ref = match.group(1)
        if ref[0] != "#":
            return _NAMED[ref]
        code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
        if not _xml_char(code):
            failed = True
            return ""
        return chr(code)

    result = _ENTITY.sub(replace, text)
    return None if failed else result


def _xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
