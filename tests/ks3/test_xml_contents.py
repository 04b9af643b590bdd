"""The listing fast path (ks3sync/ks3/xml_contents.py) reads pages exactly as ElementTree does, and
hands every page it cannot read exactly to ElementTree."""

from __future__ import annotations

from urllib.parse import quote
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ks3sync.ks3 import MalformedResponse
from ks3sync.ks3.xml import parse_list_objects, parse_list_objects_slowly
from ks3sync.ks3.xml_contents import split_contents

# Characters XML 1.0 can carry (its Char production: no surrogates, no U+FFFE or U+FFFF, which expat
# refuses), including the ones that need escaping and astral ones.
XML_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\x00\r\ufffe\uffff", min_codepoint=0x20
) | st.sampled_from("&<>\"'\t\n")


def entry_xml(
    key: str,
    size: int | str,
    etag: str,
    *,
    owner: bool,
    storage: bool,
    sep: str,
    url: bool,
    when: str = "2026-11-25T08:00:00.000Z",
    quoted: bool = True,
) -> str:
    text = quote(key, safe="/") if url else escape(key)
    etag_xml = f"&quot;{etag}&quot;" if quoted else escape(etag)
    parts = [
        f"<Key>{text}</Key>",
        f"<LastModified>{when}</LastModified>",
        f"<ETag>{etag_xml}</ETag>",
        f"<Size>{size}</Size>",
    ]
    if owner:
        parts.append(f"<Owner>{sep}<ID>1234</ID>{sep}<DisplayName>a&amp;b</DisplayName>{sep}</Owner>")
    if storage:
        parts.append("<StorageClass>STANDARD_IA</StorageClass>")
    return f"<Contents>{sep}{sep.join(parts)}{sep}</Contents>"


def page(
    entries: list[str],
    *,
    url: bool,
    truncated: bool = True,
    prefixes: tuple[str, ...] = (),
    xmlns: bool = True,
) -> bytes:
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if xmlns else ""
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult{ns}><Name>b</Name><Prefix></Prefix>'
    enc = "<EncodingType>url</EncodingType>" if url else ""
    marker = "<NextMarker>n%26m</NextMarker>" if url else "<NextMarker>n&amp;m</NextMarker>"
    common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    return (
        f"{head}<Marker></Marker><MaxKeys>1000</MaxKeys>{enc}<IsTruncated>{str(truncated).lower()}"
        f"</IsTruncated>{marker}{''.join(entries)}{common}</ListBucketResult>"
    ).encode()


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(st.text(XML_CHARS, min_size=1, max_size=40), min_size=0, max_size=12),
    url=st.booleans(),
    owner=st.booleans(),
    storage=st.booleans(),
    sep=st.sampled_from(["", "\n", "  ", "\n\t "]),
    prefixes=st.lists(st.text(XML_CHARS, min_size=1, max_size=10), max_size=3),
)
def test_fast_path_agrees_with_elementtree(
    keys: list[str], url: bool, owner: bool, storage: bool, sep: str, prefixes: list[str]
) -> None:
    body = page(
        [
            entry_xml(k, i * 7, f"{i:032x}", owner=owner, storage=storage, sep=sep, url=url)
            for i, k in enumerate(keys)
        ],
        url=url,
        prefixes=tuple(prefixes),
    )
    assert split_contents(body) is not None  # this is the fast path's shape: it must take it
    assert parse_list_objects(body) == parse_list_objects_slowly(body)


# The field text a page may carry: the usual forms (a quoted lower-case MD5, a multipart ETag, a plain
# decimal size, repeated timestamps) and the odd ones each per-entry shortcut must leave to _summary.
ETAGS = st.sampled_from(
    [
        "4be9363645d0c97d0aa3f87297aab963",
        "4BE9363645D0C97D0AA3F87297AAB963",
        "0123456789",
        "abc-3",
        "",
        " ab ",
        "W/ab",
        '"ab"',
    ]
) | st.text('0123456789abcdefABC-" W/', max_size=8)
SIZES = st.sampled_from(["0", "4096", "007", " 12", "+1", "1_0", "\u0661"]) | st.integers(0, 2**63).map(str)
TIMES = st.sampled_from(["2026-11-25T08:00:00.000Z", "2026-11-25T08:00:01.500Z", "", "yesterday"])


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(
        st.tuples(st.text(XML_CHARS, min_size=1, max_size=12), ETAGS, st.booleans(), SIZES, TIMES),
        max_size=10,
    ),
    url=st.booleans(),
)
def test_fast_path_fields_agree_with_elementtree(
    fields: list[tuple[str, str, bool, str, str]], url: bool
) -> None:
    body = page(
        [
            entry_xml(key, size, etag, quoted=quoted, when=when, owner=False, storage=False, sep="", url=url)
            for key, etag, quoted, size, when in fields
        ],
        url=url,
    )
    try:
        expected = parse_list_objects_slowly(body)
    except MalformedResponse:
        with pytest.raises(MalformedResponse):
            parse_list_objects(body)
        return
    assert parse_list_objects(body) == expected


def test_local_server_layout_takes_the_fast_path() -> None:
    # bucket_ops._contents' layout, byte for byte (with and without the owner)
    owner = "<Owner><ID>1</ID><DisplayName>ks3sync</DisplayName></Owner>"
    for with_owner in ("", owner):
        body = page(
            [
                f"<Contents><Key>a%20b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                f"<ETag>&quot;{'0' * 32}&quot;</ETag><Size>5</Size>{with_owner}"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            ],
            url=True,
        )
        fast = split_contents(body)
        assert fast is not None and [e[0] for e in fast[0]] == ["a%20b"]
        assert parse_list_objects(body).objects[0].key == "a b"


@pytest.mark.parametrize(
    ("body_entry", "why"),
    [
        (
            "<Contents><Key><![CDATA[x]]></Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size>"
            "</Contents>",
            "CDATA",
        ),
        (
            "<Contents><Size>1</Size><Key>x</Key><LastModified>t</LastModified><ETag>e</ETag></Contents>",
            "another order",
        ),
        (
            "<Contents><Key>x</Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size>"
            "<Extra>y</Extra></Contents>",
            "an unknown element",
        ),
        (
            "<Contents><Key>x</Key><!-- c --><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size>"
            "</Contents>",
            "a comment",
        ),
        (
            "<Contents><Key>x\ry</Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size></Contents>",
            "a carriage return",
        ),
        (
            "<Contents><Key>x&#x41;&#66;&lt;</Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size>"
            "</Contents><Marker>between</Marker><Contents><Key>y</Key><LastModified>t</LastModified>"
            "<ETag>e</ETag><Size>2</Size></Contents>",
            "an element between entries",
        ),
    ],
)
def test_other_shapes_fall_back_and_still_parse(body_entry: str, why: str) -> None:
    body = page([body_entry], url=False)
    assert split_contents(body) is None, why
    assert parse_list_objects(body) == parse_list_objects_slowly(body)


def test_character_references_are_read_like_elementtree() -> None:
    body = page(
        [
            "<Contents><Key>x&#x41;&#66;&lt;&amp;&apos;&gt;</Key><LastModified>t</LastModified>"
            "<ETag>e</ETag><Size>1</Size></Contents>"
        ],
        url=False,
    )
    assert split_contents(body) is not None
    assert parse_list_objects(body).objects[0].key == "xAB<&'>"
    assert parse_list_objects(body) == parse_list_objects_slowly(body)


@pytest.mark.parametrize("text", ["a & b", "&bogus;", "&#0;", "&#xD800;", "&#99999999999;"])
def test_bad_references_are_rejected_like_elementtree(text: str) -> None:
    body = page(
        [f"<Contents><Key>{text}</Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size></Contents>"],
        url=False,
    )
    with pytest.raises(MalformedResponse):
        parse_list_objects_slowly(body)
    with pytest.raises(MalformedResponse):
        parse_list_objects(body)


def test_namespace_prefixed_entries_and_other_encodings_use_elementtree() -> None:
    prefixed = (
        b'<?xml version="1.0" encoding="UTF-8"?><s3:ListBucketResult xmlns:s3="urn:x">'
        b"<s3:IsTruncated>false</s3:IsTruncated><s3:Contents><s3:Key>k</s3:Key><s3:Size>3</s3:Size>"
        b"<s3:ETag>e</s3:ETag></s3:Contents></s3:ListBucketResult>"
    )
    assert [o.key for o in parse_list_objects(prefixed).objects] == ["k"]
    latin = (
        page(
            [
                "<Contents><Key>caf\u00e9</Key><LastModified>t</LastModified><ETag>e</ETag><Size>1</Size>"
                "</Contents>"
            ],
            url=False,
        )
        .replace(b"UTF-8", b"ISO-8859-1")
        .replace("\u00e9".encode(), b"\xe9")
    )
    assert split_contents(latin) is None
    assert parse_list_objects(latin).objects[0].key == "caf\u00e9"


def test_bad_size_is_malformed_on_both_paths() -> None:
    body = page(
        ["<Contents><Key>k</Key><LastModified>t</LastModified><ETag>e</ETag><Size>+1</Size></Contents>"],
        url=False,
    )
    assert split_contents(body) is not None
    for parse in (parse_list_objects, parse_list_objects_slowly):
        with pytest.raises(MalformedResponse, match="Size"):
            parse(body)
