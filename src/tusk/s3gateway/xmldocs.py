"""The XML documents of the S3 API: building responses, parsing the few request bodies that are XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO

from tusk.s3gateway.errors import S3Error

__all__ = ["NS", "document", "error_document", "iso", "parse", "sub"]

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_MAX = 4 << 20  # a DeleteObjects of 1000 long keys fits; more is not an S3 request


def iso(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sub(parent: ET.Element, tag: str, text: str | int | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def document(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + bytes(ET.tostring(root, encoding="utf-8"))


def error_document(code: str, message: str, resource: str, request_id: str, fields: Mapping[str, str]) -> bytes:
    root = ET.Element("Error")
    sub(root, "Code", code)
    sub(root, "Message", message)
    for name, value in fields.items():
        sub(root, name, value)
    sub(root, "Resource", resource)
    sub(root, "RequestId", request_id)
    return document(root)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: IO[bytes], expect: str) -> ET.Element:
    """The request body as XML with root ``expect`` (namespaces ignored); MalformedXML otherwise."""
    data = body.read(XML_MAX + 1)
    if len(data) > XML_MAX:
        raise S3Error("MalformedXML", f"the XML body is larger than {XML_MAX >> 20} MiB")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise S3Error("MalformedXML", "DTDs and entities are not accepted in S3 request bodies")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise S3Error("MalformedXML", f"the XML body is not well-formed: {exc}") from None
    for el in root.iter():
        el.tag = _local(el.tag)
    if root.tag != expect:
        raise S3Error("MalformedXML", f"expected a <{expect}> document, not <{root.tag}>")
    return root
