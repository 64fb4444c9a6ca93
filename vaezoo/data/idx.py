"""A small reader for the IDX format of MNIST and Fashion-MNIST (plain or gzipped).

Layout: two zero bytes, one type byte, one byte with the number of dimensions ``n``,
``n`` big-endian uint32 sizes, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from ..errors import DataError

IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip detected by its magic bytes) into a native-endian array.

    Raises ``DataError`` naming the file if it is not IDX, is truncated or has trailing bytes,
    or has a number of dimensions other than ``expected_ndim``.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file: {exc}") from exc
    return parse_idx(raw, path, expected_ndim)


def parse_idx(raw: bytes, name: str = "<bytes>", expected_ndim: int | None = None) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; see ``read_idx``."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        head = raw[:4].hex() or "(empty)"
        raise DataError(
            f"{name}: not an IDX file (magic bytes 0x{head}; expected 0x0000, a type code "
            f"in {sorted(hex(t) for t in IDX_TYPES)} and a dimension count)"
        )
    dtype = np.dtype(IDX_TYPES[raw[2]])
    ndim = raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise DataError(f"{name}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape, dtype=np.int64))
    size = count * dtype.itemsize
    if len(raw) - header != size:
        problem = "truncated" if len(raw) - header < size else "has trailing bytes"
        raise DataError(
            f"{name}: IDX file {problem}: shape {tuple(shape)} needs {size} data bytes, "
            f"found {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)
