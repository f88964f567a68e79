"""A joblib file's numpy arrays as views of the verified buffer it was read into, not copies of it.

``joblib.load`` reads every array through its file object twice over: a
``bytes`` object per 16 MiB read (one copy), then those bytes into a fresh
array (a second). A verified load already holds the whole file in one
private, writable buffer (``tusk.storage.buffers.allocate``), checked against
the manifest, so an array stored in it can simply be that slice of it: no
copy, no second set of pages, and the model's memory is the file's.

Only joblib's own uncompressed format, with the aligned arrays joblib writes
since 1.2, and plain numeric arrays in this machine's byte order are viewed;
anything else (a compressed file, an object array, an old unaligned file, a
foreign byte order, an ndarray subclass, a joblib whose internals differ) is
read by joblib as usual, array by array or whole (``load`` returns ``None``
and the caller calls ``joblib.load``). A file whose arrays are less than half
its bytes is loaded the usual way too: viewing them would keep the whole
buffer alive for the sake of a few arrays.

The caller hands the buffer over: the arrays are its memory from then on, and
a model that writes into its arrays writes into it.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from tusk.storage.buffers import byte_view, reader

__all__ = ["load"]

_PICKLE = b"\x80"  # a pickle (protocol 2+), which an uncompressed joblib file is; compressed ones start otherwise
_NATIVE = {"=", "|", "<" if sys.byteorder == "little" else ">"}


def load(buffer: memoryview, name: str) -> Any | None:
    """The object in the joblib file ``buffer``, its large arrays views of it; ``None`` when joblib's own
    ``load`` must read it (see the module's docstring)."""
    if buffer[:1] != _PICKLE:
        return None
    try:
        import numpy as np
        from joblib import numpy_pickle as jp

        base_unpickler, base_wrapper = jp.NumpyUnpickler, jp.NumpyArrayWrapper
    except (ImportError, AttributeError):
        return None
    view = byte_view(buffer)

    class Wrapper(base_wrapper):  # type: ignore[misc, valid-type]  # joblib is untyped
        """joblib's array placeholder, which reads its array as a view where it can."""

        def read(self, unpickler: Any, ensure_native_byte_order: bool) -> Any:
            array = _viewed(self, unpickler, view, np) if isinstance(unpickler, Unpickler) else None
            return array if array is not None else super().read(unpickler, ensure_native_byte_order)

    class Unpickler(base_unpickler):  # type: ignore[misc, valid-type]
        dispatch = base_unpickler.dispatch.copy()
        viewed = 0

        def find_class(self, module: str, qualname: str) -> Any:
            found = super().find_class(module, qualname)
            return Wrapper if found is base_wrapper else found

    handle = reader(view, name)
    try:
        unpickler = Unpickler(name, handle, ensure_native_byte_order=True)
    except TypeError:  # another joblib's constructor
        return None
    obj = unpickler.load()
    if unpickler.viewed * 2 < len(view):  # mostly not arrays: keep no buffer alive for a few of them
        return None
    return obj


def _viewed(wrapper: Any, unpickler: Any, view: memoryview, np: Any) -> Any | None:
    """The wrapper's array as a slice of ``view``, the file positioned after it; ``None`` (nothing read) when it
    cannot be one."""
    dtype = wrapper.dtype
    alignment = wrapper.safe_get_numpy_array_alignment_bytes()
    if (alignment is None or dtype.hasobject or dtype.byteorder not in _NATIVE or dtype.fields is not None
            or wrapper.subclass not in (np.ndarray, np.memmap) or wrapper.order not in ("C", "F")):
        return None
    handle = unpickler.file_handle
    start = handle.tell()
    if start >= len(view):
        return None
    offset = start + 1 + view[start]  # joblib's padding: one byte saying how many follow, then the array
    count = math.prod(int(n) for n in wrapper.shape)
    nbytes = count * dtype.itemsize
    if offset + nbytes > len(view) or offset % dtype.alignment:
        return None
    array = np.frombuffer(view, dtype=dtype, count=count, offset=offset)
    array = array.reshape(wrapper.shape[::-1]).T if wrapper.order == "F" else array.reshape(wrapper.shape)
    handle.seek(offset + nbytes)
    unpickler.viewed += nbytes
    return array
