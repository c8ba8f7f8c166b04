"""reconciler.sources: where model bytes come from, and how source strings parse."""

from reconciler.sources.base import (
    WEIGHTS_EXTENSIONS,
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    ModelSource,
    URLModelSource,
)
from reconciler.sources.parse import DEFAULT_CIVITAI_HOSTS, parse, parse_source

__all__ = [
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
