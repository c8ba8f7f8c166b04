"""reconciler.load: the seed's ModelLoadService, its loaders and the RAM/VRAM caches.

Importing this package imports no torch, diffusers or transformers: they are imported when
a model is actually loaded (and the shipped loaders register on the first lookup).
"""

from reconciler.load.cache import CacheRecord, ModelCache
from reconciler.load.convert_cache import ModelConvertCache
from reconciler.load.loaded import LoadedModel
from reconciler.load.loader import ModelLoader
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.load.service import ModelLoadService

__all__ = ["CacheRecord", "LoadedModel", "ModelCache", "ModelConvertCache", "ModelLoadService", "ModelLoader",
           "ModelLoaderRegistry"]
