"""The binary tensor data extension of OIP V2 REST (KServe, Triton): tensors as raw bytes after the JSON.

A request that carries binary tensors has the header
``Inference-Header-Content-Length: N``: the body is N bytes of JSON, then the
data of each binary input, in the order of ``inputs``; each binary input says
how many bytes are its own in ``parameters.binary_data_size`` (and has no
``data``). Inputs with JSON ``data`` may be mixed in. The bytes of a tensor
are its elements, little-endian, row-major, without padding; a BOOL is one
byte (0 or 1); a BYTES element is a 4-byte little-endian length and then that
many bytes.

A response carries an output as binary when its requested output says
``parameters.binary_data: true``, or, for outputs that say nothing, when the
request's ``parameters.binary_data_output`` is true. Such outputs have
``parameters.binary_data_size`` instead of ``data``, the response has its own
``Inference-Header-Content-Length`` and ``Content-Type:
application/octet-stream``.

Everything that does not add up is an :class:`~tusk.errors.InputError`
saying which input and by how much.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from tusk.errors import InputError
from tusk.serving.bodies import parse_json

__all__ = ["HEADER", "BinarySection", "from_bytes", "split_request", "to_bytes"]

HEADER = "Inference-Header-Content-Length"

# the wire format of each datatype (BF16 travels as its 16 bits and becomes float32 here)
_WIRE: dict[str, str] = {
    "BOOL": "u1", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BF16": "<u2",
}
_LENGTH = struct.Struct("<I")


def split_request(body: bytes, header: str | None) -> tuple[Any, BinarySection | None]:
    """The JSON request and, with the extension's header, the binary data that follows it."""
    if header is None:
        return parse_json(body, binary_extension=True), None
    text = header.strip()
    if not text.isdigit() or not 0 < int(text) <= len(body):
        raise InputError(f"{HEADER} is {header!r}, but it must be the length in bytes of the JSON part of the "
                         f"body, between 1 and the body's {len(body)} bytes")
    n = int(text)
    try:
        request = parse_json(body[:n])
    except InputError as exc:
        raise InputError(f"the first {n} bytes of the body ({HEADER}) are not a JSON request: {exc}; the header "
                         "must give the length of the JSON alone, without the binary data after it") from None
    return request, BinarySection(memoryview(body)[n:], n)


class BinarySection:
    """The bytes after the JSON header, handed out to the binary inputs in order."""

    def __init__(self, data: memoryview, header_length: int) -> None:
        self.data = data
        self.header_length = header_length
        self.offset = 0

    def check_sizes(self, sizes: list[tuple[str, int]]) -> None:
        """The inputs' ``binary_data_size`` must add up to exactly the bytes after the JSON."""
        total = sum(size for _, size in sizes)
        if total != len(self.data):
            declared = ", ".join(f"{name}: {size}" for name, size in sizes) or "no input has binary_data_size"
            raise InputError(
                f"the binary inputs' binary_data_size add up to {total} bytes ({declared}), but "
                f"{len(self.data)} bytes follow the {self.header_length}-byte JSON header "
                f"({HEADER}: {self.header_length}, body {self.header_length + len(self.data)} bytes)")

    def take(self, size: int) -> memoryview:
        part = self.data[self.offset:self.offset + size]
        self.offset += size
        return part


def from_bytes(raw: memoryview, datatype: str, shape: list[int], where: str) -> np.ndarray[Any, Any]:
    """One binary input's bytes → an array of ``shape`` (BYTES: str elements, or bytes where not UTF-8)."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, where).reshape(shape)
    wire = np.dtype(_WIRE[datatype])
    if len(raw) % wire.itemsize:
        raise InputError(f"{where}: binary_data_size {len(raw)} is not a multiple of {wire.itemsize}, the size of "
                         f"one {datatype} element")
    if len(raw) // wire.itemsize != count:
        raise InputError(f"{where}: shape {shape} holds {count} {datatype} elements ({count * wire.itemsize} "
                         f"bytes), but binary_data_size is {len(raw)} ({len(raw) // wire.itemsize} elements)")
    values = np.frombuffer(raw, dtype=wire)
    if datatype == "BOOL":
        bad = np.flatnonzero(values > 1)
        if bad.size:
            raise InputError(f"{where}: BOOL element {int(bad[0])} is the byte {int(values[bad[0]])}; "
                             "a BOOL is one byte, 0 or 1")
        return values.astype(np.bool_).reshape(shape)
    if datatype == "BF16":  # the high half of a float32
        return (values.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return values.astype(wire.newbyteorder("=")).reshape(shape)  # a copy, in native order


def _bytes_elements(raw: memoryview, count: int, where: str) -> np.ndarray[Any, Any]:
    out = np.empty(count, dtype=object)
    offset, n = 0, 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InputError(f"{where}: BYTES element {n} is cut short: its 4-byte length prefix has only "
                             f"{len(raw) - offset} bytes left in binary_data_size {len(raw)}")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InputError(f"{where}: BYTES element {n} says it is {length} bytes, but only {len(raw) - offset} "
                             f"are left in binary_data_size {len(raw)}")
        if n < count:
            value = bytes(raw[offset:offset + length])
            try:
                out[n] = value.decode("utf-8")
            except UnicodeDecodeError:
                out[n] = value  # not text: the model gets the bytes as they came
        offset += length
        n += 1
    if n != count:
        raise InputError(f"{where}: the shape holds {count} BYTES elements, but binary_data_size {len(raw)} "
                         f"holds {n} (each a 4-byte little-endian length, then the bytes)")
    return out


def to_bytes(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    """An output array in the wire format of ``datatype`` (one of :func:`~tusk.serving.tensors.datatype_of`)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in array.ravel():
            data = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=np.dtype(_WIRE[datatype])).tobytes()
