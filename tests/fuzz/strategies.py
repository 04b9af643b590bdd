"""Hypothesis strategies shared by the fuzz tests: XML-ish documents built from a tag vocabulary (so
the parsers get past the root check and into their element logic), mutated bytes, header values.

The documents are deliberately half-valid: right root, random children, random text (digits, signs,
Unicode digits such as '²' and '١', percent escapes, entities), sometimes truncated or with a byte
flipped. Pure data; no I/O.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from hypothesis import strategies as st

# Text that tends to break naive parsers: numbers in odd scripts, huge numbers, signs, percent
# escapes that do not decode to UTF-8, quotes, whitespace, control-ish characters.
TRICKY_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "1",
            "-1",
            "+5",
            "10000",
            "99999999999999999999999999",
            "²",
            "١٢",
            "1e3",
            "0x10",
            " 7 ",
            "true",
            "TRUE",
            "url",
            "%FF",
            "%C3%A9",
            "%",
            "%%",
            "a%2Fb",
            '"abc"',
            "&quot;x&quot;",
            "2024-03-05T08:00:00.000Z",
            "2024-13-45T99:99:99Z",
            "\u00e9",
            "\ufffd",
            "\t\n",
            "AAAA" * 20,
        ]
    ),
    st.text(max_size=30),
)


def _element(tags: list[str], depth: int) -> st.SearchStrategy[str]:
    leaf = st.builds(
        lambda tag, body: f"<{tag}>{escape(body)}</{tag}>",
        st.sampled_from(tags),
        TRICKY_TEXT,
    )
    if depth <= 0:
        return leaf
    nested = st.builds(
        lambda tag, children: f"<{tag}>{''.join(children)}</{tag}>",
        st.sampled_from(tags),
        st.lists(_element(tags, depth - 1), max_size=4),
    )
    return st.one_of(leaf, nested)


def xml_documents(root: str, tags: list[str], *, depth: int = 2) -> st.SearchStrategy[bytes]:
    """A document with ``root`` as root (sometimes namespaced, sometimes with a declaration)."""
    body = st.lists(_element(tags, depth), max_size=8).map("".join)
    opening = st.sampled_from([f"<{root}>", f'<{root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'])
    declaration = st.sampled_from(
        [
            "",
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            '<?xml version="1.0" encoding="U-F-8"?>',
            '<?xml version="1.0" encoding="UTF-16"?>',
        ]
    )
    return st.builds(lambda d, o, b: (d + o + b + f"</{root}>").encode("utf-8"), declaration, opening, body)


def mutated(documents: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Documents, truncated ones, ones with one byte replaced, and plain random bytes."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        doc = draw(documents)
        how = draw(st.sampled_from(["keep", "truncate", "flip", "append-garbage"]))
        if how == "truncate" and doc:
            return doc[: draw(st.integers(0, len(doc) - 1))]
        if how == "flip" and doc:
            i = draw(st.integers(0, len(doc) - 1))
            return doc[:i] + bytes([draw(st.integers(0, 255))]) + doc[i + 1 :]
        if how == "append-garbage":
            return doc + draw(st.binary(max_size=20))
        return doc

    return st.one_of(mutate(), st.binary(max_size=200))


HEADER_VALUE = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    st.sampled_from(
        [
            "bytes=0-",
            "bytes=-0",
            "bytes=5-1",
            "bytes=²-3",
            "bytes=١-٢",
            "bytes=0-1,2-3",
            "bytes=-",
            "bytes=99999999999999999999999-",
            "KSS ",
            "KSS :",
            "KSS a:b",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=x",
            "AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=",
            "/",
            "//",
            "/b",
            "/b/",
            "/b/%FF",
            "b/k?versionId=1",
            "/b/k%2",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Mon, 99 Foo 99999 99:99:99",
            "Fri, 31 Dec 9999 23:59:59 -2359",
            "Sat, 01 Jan 0001 00:00:00 +2359",
        ]
    ),
)


def complete_multipart_documents() -> st.SearchStrategy[bytes]:
    """Well-formed CompleteMultipartUpload documents whose part numbers and ETags are tricky text."""
    part = st.builds(
        lambda number, etag: (
            f"<Part><PartNumber>{escape(number)}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
        ),
        TRICKY_TEXT,
        TRICKY_TEXT,
    )
    return st.lists(part, min_size=1, max_size=4).map(
        lambda parts: ("<CompleteMultipartUpload>" + "".join(parts) + "</CompleteMultipartUpload>").encode()
    )


def delete_documents() -> st.SearchStrategy[bytes]:
    obj = st.builds(lambda key: f"<Object><Key>{escape(key)}</Key></Object>", TRICKY_TEXT)
    return st.builds(
        lambda quiet, objs: (
            f"<Delete><Quiet>{escape(quiet)}</Quiet>" + "".join(objs) + "</Delete>"
        ).encode(),
        TRICKY_TEXT,
        st.lists(obj, min_size=1, max_size=4),
    )
