"""Reading a weights file as a state dict: safetensors, or a pickle made safe twice.

A pickled checkpoint (``.ckpt``, ``.bin``, ``.pt``, ``.pth``) is first scanned statically
(:func:`reconciler.probe.pickle_scan.scan_pickle` refuses any global outside torch's and
numpy's tensor machinery), then loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.errors import LoadError

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")


def read_weights(path: Path | str, device: str = "cpu") -> dict[str, Any]:
    """The state dict in ``path`` (UnsafePickleError for a pickle that carries code)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=device)
    if suffix in PICKLE_SUFFIXES:
        import torch

        from reconciler.probe.pickle_scan import scan_pickle

        scan_pickle(path)
        return torch.load(str(path), map_location=device, weights_only=True)
    raise LoadError(f"{path}: not a weights file (.safetensors, {', '.join(PICKLE_SUFFIXES)})")


__all__ = ["PICKLE_SUFFIXES", "read_weights"]
