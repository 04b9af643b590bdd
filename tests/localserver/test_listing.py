"""Listing correctness: the roll-up algorithm against a brute-force model, then through the server.

The model is the definition: take every key (byte order) under the prefix and after the marker, roll
each key containing the delimiter after the prefix up to its common prefix, drop repeats and prefixes
at or before the marker, cut at max-keys. Pagination must visit every entry exactly once.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.localserver.listing import list_page, prefix_successor
from tests.localserver.ls_wire import request
from tests.serverkit import ServerHandle, sdk_connection


@dataclass(frozen=True)
class Entry:
    key: str


def sorted_scan(keys: list[str]):  # type: ignore[no-untyped-def]
    encoded = sorted({k.encode() for k in keys})  # an index holds each key once

    def scan(after: bytes, inclusive: bool, below: bytes | None, limit: int) -> list[Entry]:
        start = bisect.bisect_left(encoded, after) if inclusive else bisect.bisect_right(encoded, after)
        out = []
        for key in encoded[start:]:
            if below is not None and key >= below or len(out) >= limit:
                break
            out.append(Entry(key.decode()))
        return out

    return scan


def model(keys: list[str], prefix: str, delimiter: str, marker: str) -> list[tuple[str, str]]:
    """All (kind, name) entries after the marker, in the order a full paged listing yields them."""
    seen: list[tuple[str, str]] = []
    rolled: set[str] = set()
    for key in sorted(set(keys), key=str.encode):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common in rolled or common.encode() <= marker.encode():
                continue
            rolled.add(common)
            seen.append(("prefix", common))
        elif key.encode() > marker.encode():
            seen.append(("key", key))
    return seen


def page_through(
    keys: list[str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> list[tuple[str, str]]:
    scan = sorted_scan(keys)
    out: list[tuple[str, str]] = []
    for _ in range(10_000):
        page = list_page(scan, prefix, delimiter, marker, max_keys)
        batch = [("key", e.key) for e in page.contents] + [("prefix", p) for p in page.common_prefixes]
        assert len(batch) <= max_keys
        # a page holds its keys and prefixes in byte order between them as well
        out.extend(sorted(batch, key=lambda item: item[1].encode()))
        if not page.is_truncated:
            return out
        assert page.next_marker is not None
        marker = page.next_marker
    raise AssertionError("pagination did not end")


ALPHABET = st.sampled_from(["a", "b", "/", "-", "ü", "€", " ", "%", "z", "\x7f", "😀"])
KEYS = st.lists(st.text(ALPHABET, min_size=1, max_size=6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    keys=KEYS,
    prefix=st.text(ALPHABET, max_size=2),
    delimiter=st.sampled_from(["", "/", "a", "€"]),
    marker=st.text(ALPHABET, max_size=3),
    max_keys=st.integers(1, 7),
)
def test_paged_listing_matches_the_model(
    keys: list[str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> None:
    expected = model(keys, prefix, delimiter, marker)
    got = page_through(keys, prefix, delimiter, marker, max_keys)
    assert sorted(got, key=lambda item: item[1].encode()) == expected


def test_prefix_successor() -> None:
    assert prefix_successor(b"ab") == b"ac"
    assert prefix_successor(b"a\xff") == b"b"
    assert prefix_successor(b"\xff\xff") is None


def test_rolling_up_skips_whole_prefixes_with_one_seek_each() -> None:
    keys = [f"dir{d}/file{i:05d}" for d in range(3) for i in range(5000)] + ["z"]
    calls = []
    scan = sorted_scan(keys)

    def counting(after: bytes, inclusive: bool, below: bytes | None, limit: int) -> list[Entry]:
        calls.append(after)
        return scan(after, inclusive, below, limit)

    page = list_page(counting, "", "/", "", 100)
    assert page.common_prefixes == ["dir0/", "dir1/", "dir2/"]
    assert [e.key for e in page.contents] == ["z"]
    assert len(calls) <= 5


# ------------------------------------------------------------ through the server


def _list(server: ServerHandle, bucket: str, **params: str) -> ET.Element:
    from urllib.parse import quote

    query = "&".join(f"{k.replace('_', '-')}={quote(v, safe='')}" for k, v in sorted(params.items()))
    response = request(server, "GET", bucket, query=query)
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    for node in root.iter():
        node.tag = node.tag.rsplit("}", 1)[-1]
    return root


def test_random_keys_list_like_the_model_over_http(local_server: ServerHandle, bucket: str) -> None:
    rng = random.Random(20240305)
    pieces = ["a", "b", "dir/", "x y", "ü", "+", "%41", "~", "//", "😀"]
    keys = sorted({"".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))) for _ in range(300)})
    b = sdk_connection(local_server).get_bucket(bucket)
    for key in keys:
        b.new_key(key).set_contents_from_string(key)
    for prefix, delimiter, max_keys in [
        ("", "/", 7),
        ("a", "/", 3),
        ("dir/", "", 11),
        ("", "", 1000),
        ("b", "b", 5),
    ]:
        got: list[tuple[str, str]] = []
        marker = ""
        for _ in range(1000):
            root = _list(
                local_server,
                bucket,
                prefix=prefix,
                delimiter=delimiter,
                marker=marker,
                max_keys=str(max_keys),
            )
            page = [("key", c.findtext("Key") or "") for c in root.findall("Contents")]
            page += [("prefix", p.findtext("Prefix") or "") for p in root.findall("CommonPrefixes")]
            assert len(page) <= max_keys
            got.extend(page)
            if root.findtext("IsTruncated") != "true":
                break
            marker = root.findtext("NextMarker") or ""
            assert marker, "a truncated page must carry NextMarker"
        assert sorted(got, key=lambda item: item[1].encode()) == model(keys, prefix, delimiter, ""), (
            prefix,
            delimiter,
        )


def test_v2_continuation_and_encoding_type_url(local_server: ServerHandle, bucket: str) -> None:
    b = sdk_connection(local_server).get_bucket(bucket)
    keys = [f"p/{i:02d} ü+" for i in range(25)]
    for key in keys:
        b.new_key(key).set_contents_from_string("")
    got = []
    token = None
    for _ in range(10):
        params = {"list_type": "2", "max_keys": "10", "encoding_type": "url"}
        if token:
            params["continuation_token"] = token
        root = _list(local_server, bucket, **params)
        assert root.findtext("KeyCount") == str(len(root.findall("Contents")))
        got += [c.findtext("Key") for c in root.findall("Contents")]
        token = root.findtext("NextContinuationToken")
        if root.findtext("IsTruncated") != "true":
            break
    from urllib.parse import unquote

    assert [unquote(k or "") for k in got] == keys
    assert got[0] == "p/00%20%C3%BC%2B"
    root = _list(local_server, bucket, list_type="2", start_after="p/20 ü+")
    assert [c.findtext("Key") for c in root.findall("Contents")] == keys[21:]


def test_list_object_versions_shows_null_versions(local_server: ServerHandle, bucket: str) -> None:
    b = sdk_connection(local_server).get_bucket(bucket)
    b.new_key("v1").set_contents_from_string("x")
    root = _list(local_server, bucket, versions="")
    versions = root.findall("Version")
    assert [(v.findtext("Key"), v.findtext("VersionId"), v.findtext("IsLatest")) for v in versions] == [
        ("v1", "null", "true")
    ]


def test_max_keys_with_delimiter_is_capped_at_100(local_server: ServerHandle, bucket: str) -> None:
    b = sdk_connection(local_server).get_bucket(bucket)
    for i in range(120):
        b.new_key(f"f{i:03d}").set_contents_from_string("")
    root = _list(local_server, bucket, delimiter="/", max_keys="1000")
    assert len(root.findall("Contents")) == 100
    assert root.findtext("NextMarker") == "f099"
    assert len(_list(local_server, bucket, max_keys="1000").findall("Contents")) == 120
