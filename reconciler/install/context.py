"""The seed's invocation-context model helpers, as library functions.

    path = download_and_cache_model("stabilityai/stable-diffusion-v4:fp16:vae")
    with load_local_model("/models/x.safetensors") as state_dict: ...
    with load_remote_model("https://example.com/lora.safetensors") as state_dict: ...

Each takes an optional :class:`~reconciler.install.manager.ModelManagerService`; without
one, a manager on the default settings (``load_settings()``) is built once and reused.
Models loaded this way are not records: they live in the manager's RAM cache under a key
made from their path and mtime, so a second call is a cache hit until the file changes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from reconciler.errors import LoadError
from reconciler.load.weights import PICKLE_SUFFIXES, read_weights
from reconciler.sources.base import ModelSource

if TYPE_CHECKING:
    from reconciler.install.manager import ModelManagerService

_default: Optional[ModelManagerService] = None
_default_lock = threading.Lock()



def default_manager() -> ModelManagerService:
    """The manager the helpers use when none is given (built from ``load_settings()`` once)."""
    global _default
    with _default_lock:
        if _default is None:
            from reconciler.install.manager import ModelManagerService
            from reconciler.settings import load_settings

            _default = ModelManagerService.build(load_settings())
        return _default


def download_and_cache_model(source: str | ModelSource, manager: Optional[ModelManagerService] = None) -> Path:
    """Download ``source`` into the download cache and return the local path.

    ``source`` is a direct download URL or a Hugging Face repo id, with the seed's forms
    (``owner/name``, ``owner/name:fp16``, ``owner/name:fp16:vae``, ``owner/name::path/file``).
    A cached source is returned without downloading again.
    """
    manager = manager or default_manager()
    return manager.install.download_and_cache(source)


def load_local_model(model_path: Path | str, loader: Optional[Callable[[Path], Any]] = None,
                     manager: Optional[ModelManagerService] = None) -> Any:
    """Load a file or folder that is not in the record store; returns a LoadedModel.

    With ``loader`` (a callable taking the path) that does the loading.  Otherwise:
    ``safetensors.torch.load_file`` for a ``.safetensors`` file, ``torch.load`` with
    ``weights_only=True`` (after a static scan) for a ``.ckpt``/``.bin``/``.pt``/``.pth``
    file, and the right
    ``from_pretrained`` for a folder (a diffusers pipeline or model, or a transformers model).
    """
    from reconciler.load.loaded import LoadedModel

    manager = manager or default_manager()
    path = Path(model_path)
    if not path.exists():
        from reconciler.errors import ModelNotFoundException

        raise ModelNotFoundException(f"{path}: no such file or folder")
    cache = manager.load.ram_cache
    key = _local_key(path, loader)

    def load() -> tuple[Any, bool]:
        return cache.get_or_load(key, None, lambda: (loader or load_by_path)(path), lambda: _files_size(path))

    record, hit = load()
    return LoadedModel(None, cache=cache, record=record, reload=load, cache_hit=hit)


def load_remote_model(source: str | ModelSource, loader: Optional[Callable[[Path], Any]] = None,
                      manager: Optional[ModelManagerService] = None) -> Any:
    """Download ``source`` (or find it in the cache), then :func:`load_local_model` it."""
    manager = manager or default_manager()
    return load_local_model(download_and_cache_model(source, manager), loader, manager)


def load_by_path(path: Path) -> Any:
    """The model at ``path``, read the way its kind of file or folder is read."""
    if path.is_file():
        if path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
            return read_weights(path)
        raise LoadError(f"{path}: cannot tell how to load a {path.suffix or 'suffix-less'} file; pass a loader")
    if (path / "model_index.json").is_file():
        from diffusers import DiffusionPipeline

        return DiffusionPipeline.from_pretrained(str(path), local_files_only=True)
    config_file = path / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        class_name = config.get("_class_name")
        if class_name:
            import diffusers

            model_class = getattr(diffusers, class_name, None)
            if model_class is None:
                raise LoadError(f"{path}: diffusers has no class {class_name!r}")
            return model_class.from_pretrained(str(path), local_files_only=True)
        if config.get("architectures"):
            import transformers

            name = config["architectures"][0]
            model_class = getattr(transformers, name, None) or transformers.AutoModel
            return model_class.from_pretrained(str(path), local_files_only=True)
    raise LoadError(f"{path}: not a diffusers or transformers folder (no model_index.json or config.json); "
                    "pass a loader")


def _local_key(path: Path, loader: Optional[Callable[[Path], Any]]) -> str:
    resolved = path.resolve()
    newest = max((p.stat().st_mtime_ns for p in [resolved, *resolved.rglob("*")] if p.is_file()), default=0)
    who = "" if loader is None else f"{getattr(loader, '__module__', '')}.{getattr(loader, '__qualname__', repr(loader))}"
    digest = hashlib.sha256(f"{resolved}\0{newest}\0{who}".encode()).hexdigest()[:24]
    return f"local:{digest}"


def _files_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


__all__ = ["default_manager", "download_and_cache_model", "load_by_path", "load_local_model", "load_remote_model"]
