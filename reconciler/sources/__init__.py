"""reconciler.sources: where model bytes come from, how source strings parse, and resolving.

The resolvers (and requests/huggingface_hub with them) load on first use, so parsing a
manifest stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from reconciler.sources.base import (
    WEIGHTS_EXTENSIONS,
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    ModelSource,
    URLModelSource,
)
from reconciler.sources.parse import DEFAULT_CIVITAI_HOSTS, parse, parse_source

_LAZY: dict[str, str] = {
    "RemoteFile": "reconciler.sources.resolved",
    "ResolvedSource": "reconciler.sources.resolved",
    "resolve_source": "reconciler.sources.resolve",
    "resolve_hf": "reconciler.sources.huggingface",
    "HuggingFaceMetadataFetch": "reconciler.sources.huggingface",
    "resolve_civitai": "reconciler.sources.civitai",
    "CivitaiMetadataFetch": "reconciler.sources.civitai",
    "ModelMetadataFetchBase": "reconciler.sources.metadata_fetch",
    "resolve_url": "reconciler.sources.url",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reconciler.sources' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "CivitaiMetadataFetch",
    "HuggingFaceMetadataFetch",
    "ModelMetadataFetchBase",
    "RemoteFile",
    "ResolvedSource",
    "resolve_civitai",
    "resolve_hf",
    "resolve_source",
    "resolve_url",
    "DEFAULT_CIVITAI_HOSTS",
    "WEIGHTS_EXTENSIONS",
    "CivitaiModelSource",
    "HFModelSource",
    "LocalModelSource",
    "ModelSource",
    "URLModelSource",
    "parse",
    "parse_source",
]
