"""Parsing every KS3 response document (plain and with a default xmlns) and building request bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from ks3sync.ks3 import MalformedResponse
from ks3sync.ks3.errors import parse_error_body
from ks3sync.ks3.xml import (
    build_complete,
    build_delete,
    build_restore,
    parse_acl,
    parse_complete,
    parse_copy_result,
    parse_delete_result,
    parse_initiate,
    parse_list_buckets,
    parse_list_objects,
    parse_list_parts,
    parse_list_uploads,
    root_name,
)

NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
T0 = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)


def doc(text: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")


@pytest.mark.parametrize("ns", ["", NS])
def test_list_buckets(ns):
    body = doc(
        f"<ListAllMyBucketsResult{ns}><Owner><ID>1</ID><DisplayName>1</DisplayName></Owner><Buckets>"
        "<Bucket><Name>my-bucket</Name><CreationDate>2024-03-05T08:00:00.000Z</CreationDate>"
        "<Region>BEIJING</Region><Type>NORMAL</Type></Bucket>"
        "<Bucket><Name>other</Name><CreationDate>2024-03-05T08:00:00.000Z</CreationDate></Bucket>"
        "</Buckets></ListAllMyBucketsResult>"
    )
    buckets = parse_list_buckets(body)
    assert [(b.name, b.creation_date, b.region) for b in buckets] == [
        ("my-bucket", T0, "BEIJING"),
        ("other", T0, None),
    ]


def test_list_buckets_without_buckets_element_is_empty():
    assert parse_list_buckets(doc("<ListAllMyBucketsResult><Owner/></ListAllMyBucketsResult>")) == []


@pytest.mark.parametrize("ns", ["", NS])
def test_list_objects_plain_with_common_prefixes(ns):
    body = doc(
        f"<ListBucketResult{ns}><Name>my-bucket</Name><Prefix>dir/</Prefix><Marker></Marker>"
        "<MaxKeys>100</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
        "<NextMarker>dir/sub/</NextMarker>"
        "<Contents><Key>dir/a &amp; b.txt</Key><LastModified>2024-03-05T08:00:00.000Z</LastModified>"
        '<ETag>"5D41402ABC4B2A76B9719D911017C592"</ETag><Size>5</Size>'
        "<Owner><ID>1</ID><DisplayName>1</DisplayName></Owner><StorageClass>STANDARD_IA</StorageClass></Contents>"
        "<Contents><Key>dir/b%20c</Key><LastModified>2024-03-05T08:00:00.000Z</LastModified>"
        '<ETag>"x-2"</ETag><Size>0</Size></Contents>'
        "<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
        "<CommonPrefixes><Prefix>dir/zz/</Prefix></CommonPrefixes>"
        "</ListBucketResult>"
    )
    page = parse_list_objects(body)
    assert [(o.key, o.size, o.etag, o.storage_class, o.last_modified) for o in page.objects] == [
        ("dir/a & b.txt", 5, "5d41402abc4b2a76b9719d911017c592", "STANDARD_IA", T0),
        ("dir/b%20c", 0, "x-2", "STANDARD", T0),  # not url-encoded: a literal %20 stays
    ]
    assert page.common_prefixes == ["dir/sub/", "dir/zz/"]
    assert page.is_truncated is True
    assert page.next_marker == "dir/sub/"


def test_list_objects_encoding_type_url_is_percent_decoded_not_plus_decoded():
    body = doc(
        f"<ListBucketResult{NS}><Name>b</Name><EncodingType>url</EncodingType><Prefix>d%20x/</Prefix>"
        "<IsTruncated>true</IsTruncated><NextMarker>d%20x/%E6%96%87+1</NextMarker>"
        '<Contents><Key>d%20x/%E6%96%87+1</Key><Size>3</Size><ETag>"e"</ETag></Contents>'
        '<Contents><Key>d%20x/%25literal%0A</Key><Size>1</Size><ETag>"e"</ETag></Contents>'
        "<CommonPrefixes><Prefix>d%20x/sub%2Bdir/</Prefix></CommonPrefixes>"
        "</ListBucketResult>"
    )
    page = parse_list_objects(body)
    assert [o.key for o in page.objects] == ["d x/文+1", "d x/%literal\n"]
    assert page.common_prefixes == ["d x/sub+dir/"]
    assert page.next_marker == "d x/文+1"


def test_list_objects_not_truncated_without_next_marker():
    page = parse_list_objects(
        doc("<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>")
    )
    assert (
        page.objects == []
        and page.common_prefixes == []
        and not page.is_truncated
        and page.next_marker is None
    )


@pytest.mark.parametrize("ns", ["", NS])
def test_initiate(ns):
    body = doc(
        f"<InitiateMultipartUploadResult{ns}><Bucket>my-bucket</Bucket><Key>big file</Key>"
        "<UploadId>0123456789abcdef0123456789abcdef</UploadId></InitiateMultipartUploadResult>"
    )
    result = parse_initiate(body)
    assert (result.bucket, result.key, result.upload_id) == (
        "my-bucket",
        "big file",
        "0123456789abcdef0123456789abcdef",
    )


def test_initiate_without_upload_id_is_malformed():
    with pytest.raises(MalformedResponse, match="UploadId"):
        parse_initiate(doc("<InitiateMultipartUploadResult><Key>k</Key></InitiateMultipartUploadResult>"))


@pytest.mark.parametrize("ns", ["", NS])
def test_list_parts(ns):
    body = doc(
        f"<ListPartsResult{ns}><Bucket>my-bucket</Bucket><Key>big file</Key><UploadId>u</UploadId>"
        "<Initiator><ID>1</ID></Initiator><Owner><ID>1</ID></Owner><StorageClass>STANDARD</StorageClass>"
        "<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>"
        "<MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>1</PartNumber><LastModified>2024-03-05T08:00:00.000Z</LastModified>"
        '<ETag>"AA"</ETag><Size>102400</Size><ChecksumCRC64ECMA>11051210869376104954</ChecksumCRC64ECMA></Part>'
        '<Part><PartNumber>2</PartNumber><ETag>"bb"</ETag><Size>7</Size></Part>'
        "</ListPartsResult>"
    )
    page = parse_list_parts(body)
    assert [(p.part_number, p.etag, p.size, p.crc64, p.last_modified) for p in page.parts] == [
        (1, "aa", 102400, 11051210869376104954, T0),
        (2, "bb", 7, None, None),
    ]
    assert page.is_truncated and page.next_part_number_marker == 2


def test_list_parts_with_bad_integer_is_malformed():
    with pytest.raises(MalformedResponse, match="PartNumber"):
        parse_list_parts(
            doc(
                "<ListPartsResult><Part><PartNumber>one</PartNumber><ETag>e</ETag><Size>1</Size></Part></ListPartsResult>"
            )
        )


@pytest.mark.parametrize("ns", ["", NS])
def test_complete(ns):
    body = doc(
        f"<CompleteMultipartUploadResult{ns}><Location>http://x/big%20file</Location><Bucket>my-bucket</Bucket>"
        '<Key>big file</Key><ETag>"a9a5789a7cac1fd74779c556fdc83e3a-3"</ETag>'
        "<ChecksumCRC64ECMA>2757484240721801412</ChecksumCRC64ECMA></CompleteMultipartUploadResult>"
    )
    result = parse_complete(body)
    assert (result.etag, result.crc64) == ("a9a5789a7cac1fd74779c556fdc83e3a-3", 2757484240721801412)


@pytest.mark.parametrize("ns", ["", NS])
def test_list_uploads(ns):
    body = doc(
        f"<ListMultipartUploadsResult{ns}><Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
        "<NextKeyMarker>big file</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
        "<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
        "<Upload><Key>a</Key><UploadId>u1</UploadId><Initiated>2024-03-05T08:00:00.000Z</Initiated></Upload>"
        "<Upload><Key>big file</Key><UploadId>u2</UploadId><StorageClass>STANDARD</StorageClass>"
        "<Initiated>2024-03-05T08:00:00.000Z</Initiated></Upload>"
        "<CommonPrefixes><Prefix>logs/</Prefix></CommonPrefixes></ListMultipartUploadsResult>"
    )
    page = parse_list_uploads(body)
    assert [(u.key, u.upload_id, u.initiated) for u in page.uploads] == [
        ("a", "u1", T0),
        ("big file", "u2", T0),
    ]
    assert page.common_prefixes == ["logs/"]
    assert page.is_truncated and page.next_key_marker == "big file" and page.next_upload_id_marker == "u2"


def test_list_uploads_url_encoded():
    body = doc(
        "<ListMultipartUploadsResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
        "<Upload><Key>a%20b</Key><UploadId>u1</UploadId></Upload></ListMultipartUploadsResult>"
    )
    assert [u.key for u in parse_list_uploads(body).uploads] == ["a b"]


@pytest.mark.parametrize(
    "text",
    [
        '<CopyObjectResult><LastModified>2024-03-05T08:00:00.000Z</LastModified><ETag>"9A0364B9E99BB480DD25E1F0284C8555"</ETag></CopyObjectResult>',
        f'<CopyPartResult{NS}><LastModified>2024-03-05T08:00:00.000Z</LastModified><ETag>"9a0364b9e99bb480dd25e1f0284c8555"</ETag>'
        "<ChecksumCRC64ECMA>123</ChecksumCRC64ECMA></CopyPartResult>",
    ],
)
def test_copy_results(text):
    result = parse_copy_result(doc(text))
    assert result.etag == "9a0364b9e99bb480dd25e1f0284c8555"
    assert result.last_modified == T0
    assert result.crc64 == (123 if "CopyPart" in text else None)


def test_copy_result_error_document_is_rejected():
    with pytest.raises(MalformedResponse, match="Error"):
        parse_copy_result(doc("<Error><Code>InternalError</Code></Error>"))


@pytest.mark.parametrize("ns", ["", NS])
def test_delete_result(ns):
    body = doc(
        f"<DeleteResult{ns}><Deleted><Key>a.txt</Key></Deleted>"
        "<Error><Key>b/c.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        "</DeleteResult>"
    )
    result = parse_delete_result(body)
    assert result.deleted == ["a.txt"]
    assert result.errors == [("b/c.txt", "AccessDenied", "Access Denied")]


def _acl(*grants: str) -> bytes:
    return doc(
        f"<AccessControlPolicy{NS}><Owner><ID>1234567</ID><DisplayName>1234567</DisplayName></Owner>"
        f"<AccessControlList>{''.join(grants)}</AccessControlList></AccessControlPolicy>"
    )


OWNER_FULL = (
    '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
    "<ID>1234567</ID><DisplayName>1234567</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
)


def _all_users(permission: str) -> str:
    return (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
        "<URI>http://acs.ksyun.com/groups/global/AllUsers</URI></Grantee>"
        f"<Permission>{permission}</Permission></Grant>"
    )


@pytest.mark.parametrize(
    ("grants", "canned"),
    [
        ((OWNER_FULL,), "private"),
        ((OWNER_FULL, _all_users("READ")), "public-read"),
        ((OWNER_FULL, _all_users("READ"), _all_users("WRITE")), "public-read-write"),
    ],
)
def test_acl_to_canned(grants, canned):
    policy = parse_acl(_acl(*grants))
    assert policy.owner_id == "1234567"
    assert policy.grants[0].grantee_type == "CanonicalUser"
    assert policy.canned() == canned


def test_unparseable_body_is_malformed():
    with pytest.raises(MalformedResponse, match="unparseable"):
        parse_list_objects(b"<html>oops")


def _reparse(body: bytes) -> ET.Element:
    assert body.startswith(b"<?xml")
    return ET.fromstring(body)


def test_build_complete_quotes_etags_in_order():
    root = _reparse(build_complete([(1, "AA"), (2, '"bb"')]))
    assert root.tag == "CompleteMultipartUpload"
    assert [(p.findtext("PartNumber"), p.findtext("ETag")) for p in root] == [("1", '"aa"'), ("2", '"bb"')]


def test_build_delete_escapes_keys():
    root = _reparse(build_delete(["a&b<c>.txt", "文/x"], quiet=True))
    assert root.findtext("Quiet") == "true"
    assert [o.findtext("Key") for o in root.findall("Object")] == ["a&b<c>.txt", "文/x"]


def test_build_restore():
    assert _reparse(build_restore(3)).findtext("Days") == "3"


# Hostile or broken bodies must surface as KS3Error (MalformedResponse), never as another exception
# type (found by tests/fuzz; these pin the fixes).


def test_unknown_encoding_declaration_is_malformed():
    with pytest.raises(MalformedResponse, match="unparseable"):
        parse_delete_result(b'<?xml version="1.0" encoding="U-F-8"?><DeleteResult></DeleteResult>')


def test_url_encoded_key_that_is_not_utf8_is_malformed():
    body = doc(
        "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>%FF</Key><Size>1</Size>"
        "</Contents></ListBucketResult>"
    )
    with pytest.raises(MalformedResponse, match="not UTF-8"):
        parse_list_objects(body)


@pytest.mark.parametrize("size", ["+1", "1_0", "\u00b2", "\u0661", "-3", "1.5", "9" * 5000, str(1 << 63)])
def test_sizes_must_be_plain_decimals(size):
    body = doc(f"<ListBucketResult><Contents><Key>k</Key><Size>{size}</Size></Contents></ListBucketResult>")
    with pytest.raises(MalformedResponse, match="decimal"):
        parse_list_objects(body)


def test_a_crc64_may_use_all_64_bits_and_no_more():
    part = "<Part><PartNumber>1</PartNumber><ETag>e</ETag><Size>1</Size><ChecksumCRC64ECMA>{}</ChecksumCRC64ECMA></Part>"
    top = (1 << 64) - 1
    assert (
        parse_list_parts(doc(f"<ListPartsResult>{part.format(top)}</ListPartsResult>")).parts[0].crc64 == top
    )
    with pytest.raises(MalformedResponse, match="decimal"):
        parse_list_parts(doc(f"<ListPartsResult>{part.format(top + 1)}</ListPartsResult>"))


def test_namespace_handling_default_prefixed_nested_and_comments():
    """The root's default xmlns is dropped before parsing; a namespace declared deeper is still stripped,
    prefixed declarations (xsi) keep working, and a comment before the root is not mistaken for it."""
    from ks3sync.ks3.xml import parse_document

    body = (
        b"<?xml version=\"1.0\"?>\n<!-- a comment --><ListBucketResult xmlns = 'urn:a' "
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Contents xmlns="urn:b"><Key>k</Key>'
        b'<Size>1</Size></Contents><Name xsi:type="x">n</Name></ListBucketResult>'
    )
    root = parse_document(body, "ListBucketResult")
    assert [e.tag for e in root.iter()] == ["ListBucketResult", "Contents", "Key", "Size", "Name"]
    assert root.find("Name").get("{http://www.w3.org/2001/XMLSchema-instance}type") == "x"
    assert [o.key for o in parse_list_objects(body).objects] == ["k"]


def test_list_objects_contents_first_child_wins_and_required_fields():
    body = doc(
        "<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size><Size>2</Size>"
        "<StorageClass></StorageClass></Contents></ListBucketResult>"
    )
    [obj] = parse_list_objects(body).objects
    assert (obj.key, obj.size, obj.storage_class, obj.etag, obj.last_modified) == (
        "a",
        1,
        "STANDARD",
        "",
        None,
    )
    with pytest.raises(MalformedResponse, match="no <Key>"):
        parse_list_objects(doc("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"))
    with pytest.raises(MalformedResponse, match="no <Size>"):
        parse_list_objects(
            doc("<ListBucketResult><Contents><Key>a</Key><Size> </Size></Contents></ListBucketResult>")
        )
    with pytest.raises(MalformedResponse, match="not a decimal"):
        parse_list_objects(
            doc("<ListBucketResult><Contents><Key>a</Key><Size>+1</Size></Contents></ListBucketResult>")
        )


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?>\n<!DOCTYPE ListBucketResult [<!ENTITY k "spoofed">]>'
        b'<ListBucketResult><Contents><Key>&k;</Key><Size>1</Size><ETag>"e"</ETag></Contents></ListBucketResult>',
        b'<!DOCTYPE ListBucketResult SYSTEM "http://attacker.invalid/dtd"><ListBucketResult/>',
        '<?xml version="1.0" encoding="UTF-16"?><ListBucketResult/>'.encode("utf-16"),
    ],
    ids=["internal-entity", "external-dtd", "utf-16"],
)
def test_a_doctype_in_a_response_is_refused_unparsed(body):
    """Issue 15 point 11: entities could forge keys or expand without bound; KS3 never sends a DOCTYPE."""
    with pytest.raises(MalformedResponse, match="DOCTYPE|UTF-16"):
        parse_list_objects(body)
    with pytest.raises(MalformedResponse):
        parse_initiate(body.replace(b"ListBucketResult", b"InitiateMultipartUploadResult"))
    assert root_name(body) is None
    assert parse_error_body(body.replace(b"ListBucketResult", b"Error")) == ("", "", "", "")
