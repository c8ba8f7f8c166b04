"""reconciler.load: the seed's ModelLoadService, its loaders and the RAM/VRAM caches.

torch, diffusers and transformers are imported only when a model is actually loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelLoadService": "reconciler.load.service",
    "ModelCache": "reconciler.load.cache",
    "CacheRecord": "reconciler.load.cache",
    "ModelConvertCache": "reconciler.load.convert_cache",
    "ModelLoaderRegistry": "reconciler.load.registry",
    "ModelLoader": "reconciler.load.loader",
    "LoadedModel": "reconciler.load.loaded",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler.load' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
