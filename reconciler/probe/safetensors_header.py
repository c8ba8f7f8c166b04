"""Read a safetensors file's header (names, shapes, dtypes) without touching its tensors.

The format: 8 bytes little-endian ``N``, then ``N`` bytes of JSON mapping each tensor name
to ``{"dtype", "shape", "data_offsets"}`` (plus an optional ``__metadata__`` of strings),
then the tensor bytes.  Reading the header costs one small read whatever the file's size,
and it is checked well enough to refuse a truncated or garbage file with a clear message
before anything trusts it.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import InvalidModelError

__all__ = ["TensorInfo", "SafetensorsHeader", "read_safetensors_header", "looks_like_safetensors",
           "MAX_HEADER_BYTES"]

#: A header larger than this is refused (safetensors itself caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000

_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it."""

    dtype: str
    shape: tuple[int, ...]


@dataclass
class SafetensorsHeader:
    """The parsed header: tensors by name (in file order) and the string metadata."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape."""
        return {k: v.shape for k, v in self.tensors.items()}


def looks_like_safetensors(head: bytes, file_size: int) -> bool:
    """True when the first bytes of a file could start a safetensors header."""
    if len(head) < 9 or file_size < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= MAX_HEADER_BYTES and head[8:9] == b"{"


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """Parse and check the header of the safetensors file at ``path``.

    Raises InvalidModelError naming the file when it is too short, its header length is
    impossible, the header is cut off or is not the expected JSON, or the tensor data it
    describes runs past the end of the file (a truncated download).
    """
    path = Path(path)
    size = os.path.getsize(path)

    def bad(why: str) -> InvalidModelError:
        return InvalidModelError(f"{path}: not a valid safetensors file: {why}")

    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise bad(f"the file holds {size} bytes, too few for a header")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise bad(f"header length {n} is not plausible")
        if n > size - 8:
            raise bad(f"truncated: the header claims {n} bytes but the file holds {size - 8} after its length")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"the header is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise bad("__metadata__ is not an object")
    data_size = size - 8 - n
    tensors: dict[str, TensorInfo] = {}
    end_max = 0
    for name, info in header.items():
        try:
            dtype = info["dtype"]
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise bad(f"tensor {name!r} has a malformed entry") from None
        if not isinstance(dtype, str) or any(d < 0 for d in shape) or not 0 <= begin <= end:
            raise bad(f"tensor {name!r} has a malformed entry")
        width = _DTYPE_BYTES.get(dtype)
        if width is not None and (end - begin) != math.prod(shape) * width:
            raise bad(f"tensor {name!r}: {end - begin} bytes do not hold {dtype}{list(shape)}")
        end_max = max(end_max, end)
        tensors[name] = TensorInfo(dtype=dtype, shape=shape)
    if end_max > data_size:
        raise bad(f"truncated: tensor data needs {end_max} bytes but the file holds {data_size}")
    return SafetensorsHeader(tensors=tensors, metadata={str(k): str(v) for k, v in meta.items()})
