"""Read the tensor names and shapes of a pickled checkpoint (.ckpt, .pt, .pth, .bin) safely.

Two layers, so that a pickle carrying code is refused before anything executes it:

1. :func:`scan_pickle` walks the pickle opcodes without executing them (no torch needed)
   and refuses any import other than the handful torch's own ``torch.save`` emits for plain
   tensors (tensor/parameter rebuilders, storage and dtype classes, ``OrderedDict``).
2. :func:`read_pickle_checkpoint` then loads it with
   ``torch.load(weights_only=True, map_location="meta")``: torch's restricted unpickler,
   and no tensor bytes are read into memory.  torch is imported here, lazily, and only here.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from reconciler.errors import InvalidModelError, OptionalDependencyError

__all__ = ["scan_pickle", "read_pickle_checkpoint", "UnsafePickleError", "flatten_state_dict"]

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}
_TORCH_DTYPES = {
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "int8", "int16",
    "int32", "int64", "uint8", "bool", "complex64", "complex128", "long", "int", "short",
    "float8_e4m3fn", "float8_e5m2",
}


class UnsafePickleError(InvalidModelError):
    """A pickle imports something other than plain tensor machinery: it could run code."""


def _allowed(module: str, name: str) -> bool:
    if module == "collections" and name == "OrderedDict":
        return True
    if module == "torch._utils" and name.startswith("_rebuild_"):
        return True
    if module == "torch":
        return name.endswith("Storage") or name in _TORCH_DTYPES or name in {"Size", "device"}
    if module == "torch.storage" and name in {"UntypedStorage", "TypedStorage"}:
        return True
    return module == "torch.serialization" and name == "_get_layout"


def _globals_in(stream: IO[bytes]) -> Iterator[tuple[str, str]]:
    """(module, name) of every import in the next pickle of ``stream``, without executing it."""
    recent: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name == "GLOBAL" or name == "INST":
            module, _, attr = str(arg).partition(" ")
            yield module, attr
        elif name == "STACK_GLOBAL":
            if len(recent) < 2 or not all(isinstance(x, str) for x in recent[-2:]):
                yield "<dynamic>", "<dynamic>"
            else:
                yield recent[-2], recent[-1]
        if name in _STRING_OPS:
            recent.append(arg)
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(int(arg)))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = recent[-1] if recent else None
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name not in ("PROTO", "FRAME"):
            recent.append(None)
        del recent[:-4]


def scan_pickle(path: str | Path) -> None:
    """Refuse (UnsafePickleError) a checkpoint whose pickles import anything but tensor machinery.

    Handles torch's zip container (every ``*.pkl`` member) and the legacy format (a run of
    pickles followed by raw storage bytes).  Raises InvalidModelError when the file is not a
    pickle at all.
    """
    path = Path(path)

    def check(stream: IO[bytes], where: str) -> None:
        for module, name in _globals_in(stream):
            if not _allowed(module, name):
                raise UnsafePickleError(
                    f"{path}: refused: its pickle{where} imports {module}.{name}, which could run code "
                    "when loaded; only plain tensors are accepted (convert it to .safetensors)")

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.endswith(".pkl")]
            if not members:
                raise InvalidModelError(f"{path}: not a model: a zip archive without a pickled checkpoint")
            for member in members:
                try:
                    check(io.BytesIO(zf.read(member)), f" ({member})")
                except UnsafePickleError:
                    raise
                except Exception as exc:
                    raise InvalidModelError(f"{path}: not a readable checkpoint: {member}: {exc}") from None
        return
    with open(path, "rb") as fh:
        # legacy torch.save: magic number, protocol, sys info, the object, storage keys
        for i in range(5):
            try:
                check(fh, "")
            except UnsafePickleError:
                raise
            except Exception as exc:
                if i == 0:
                    raise InvalidModelError(f"{path}: not a readable checkpoint: {exc}") from None
                return
            pos = fh.tell()
            if not fh.read(1):
                return
            fh.seek(pos)


def flatten_state_dict(obj: Any, prefix: str = "") -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """Tensor shapes and scalar values of a loaded checkpoint, nested keys joined with ``.``."""
    shapes: dict[str, tuple[int, ...]] = {}
    scalars: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                s, c = flatten_state_dict(value, name + ".")
                shapes.update(s)
                scalars.update(c)
            elif hasattr(value, "shape") and hasattr(value, "dtype"):
                shapes[name] = tuple(int(d) for d in value.shape)
            elif isinstance(value, (int, float, str, bool)):
                scalars[name] = value
    return shapes, scalars


def _weights_only_reason(exc: BaseException) -> str:
    """The line of torch's weights-only error that says what it refused (its first line is
    advice, with terminal escapes), else that first line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def read_pickle_checkpoint(path: str | Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """Shapes and scalars (e.g. ``global_step``) of a pickled checkpoint, refusing unsafe pickles."""
    path = Path(path)
    scan_pickle(path)
    try:
        import torch  # noqa: PLC0415  (lazy: only .ckpt probing needs torch)
    except ImportError:
        raise OptionalDependencyError(
            f"{path}: reading a pickled checkpoint needs torch (install the [torch] extra), "
            "or set `type`, `format` and `base` in the manifest") from None
    try:
        obj = torch.load(path, map_location="meta", weights_only=True)
    except Exception as exc:
        raise UnsafePickleError(f"{path}: refused: torch's weights-only loader rejected it: "
                                f"{_weights_only_reason(exc)}") from None
    if not isinstance(obj, dict):
        raise InvalidModelError(f"{path}: not a model: the pickle holds a {type(obj).__name__}, not a state dict")
    return flatten_state_dict(obj)
