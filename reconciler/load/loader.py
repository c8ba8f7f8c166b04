"""ModelLoader: the base class of every loader (the seed's "Adding Model Loaders").

A loader implements ``_load_model(model_path, model_variant=None, submodel_type=None)``;
one that converts (a single-file checkpoint to a diffusers folder) also implements
``_needs_conversion(config, model_path, dest_path)`` and ``_convert_model(config,
model_path, output_path)``.  :meth:`ModelLoader.load_model` does the rest the same way for
all: find the files, convert through the convert cache when needed, and load through the
RAM cache (room made from the files' size first; a hit touches no file).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.errors import LoadError, ModelNotFoundException
from reconciler.load.cache import ModelCache
from reconciler.load.convert_cache import ModelConvertCache
from reconciler.load.devices import choose_dtype
from reconciler.load.loaded import LoadedModel
from reconciler.taxonomy import ModelRepoVariant, SubModelType

log = logging.getLogger(__name__)


def files_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_path_of(config: ModelConfigBase, models_dir: Path) -> Path:
    """Where a record's files are: its path, relative ones under ``models_dir``."""
    path = Path(config.path)
    return path if path.is_absolute() else models_dir / path


class ModelLoader:
    """Base of the loaders; subclasses implement :meth:`_load_model`."""

    def __init__(self, app_config: Any, logger: Optional[logging.Logger] = None,
                 ram_cache: Optional[ModelCache] = None, convert_cache: Optional[ModelConvertCache] = None) -> None:
        self._app_config = app_config
        self._logger = logger or log
        self._ram_cache = ram_cache
        self._convert_cache = convert_cache

    @property
    def _torch_dtype(self) -> Any:
        device = self._ram_cache.execution_device if self._ram_cache is not None else "cpu"
        return choose_dtype(getattr(self._app_config, "precision", "auto"), device)

    # --- the one path every load takes -----------------------------------------------------
    def load_model(self, model_config: ModelConfigBase, submodel_type: Optional[SubModelType] = None) -> LoadedModel:
        """Load ``model_config`` (one of a pipeline's submodels with ``submodel_type``).

        ModelNotFoundException when its files are gone; LoadError (with the loader's
        message and the model's name) when loading fails.
        """
        if self._ram_cache is None:
            raise LoadError("a loader needs a ram_cache")
        cache = self._ram_cache

        def load() -> tuple[Any, bool]:
            # on a hit neither function runs: a cached model is returned without touching disk
            prepared: dict[str, Path] = {}

            def prepare() -> int:
                path = self._find(model_config)
                try:
                    source = self._converted(model_config, path)
                except LoadError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failed conversion names the model
                    raise LoadError(f"could not convert {model_config.name!r} ({model_config.type.value}, "
                                    f"{model_config.format.value}) from {path}: {type(exc).__name__}: {exc}") from exc
                prepared["source"] = source
                return self.get_size_fs(model_config, source, submodel_type)

            return cache.get_or_load(model_config.key, submodel_type,
                                     lambda: self._load_or_explain(model_config, prepared["source"], submodel_type),
                                     prepare)

        record, hit = load()
        return LoadedModel(model_config, cache=cache, record=record, reload=load, cache_hit=hit)

    def _find(self, config: ModelConfigBase) -> Path:
        models_dir = Path(getattr(self._app_config, "models_dir", "."))
        path = model_path_of(config, models_dir)
        if not path.exists():
            raise ModelNotFoundException(f"model {config.name!r} ({config.key}): files not found at {path}")
        return path

    def _converted(self, config: ModelConfigBase, path: Path) -> Path:
        """The path to load from: ``path``, or its conversion in the convert cache."""
        cache = self._convert_cache
        if cache is None:
            return path
        dest = cache.path_for(config, path)
        if not self._needs_conversion(config, path, dest):
            return path
        found = cache.lookup(config, path)
        if found is not None:
            return found
        for stale in cache.stale_entries(config, path):
            shutil.rmtree(stale, ignore_errors=True)
        cache.make_room(files_size(path))
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            out = self._convert_model(config, path, partial)
            if Path(out) != partial:
                raise LoadError(f"{type(self).__name__}._convert_model wrote {out}, not {partial}")
            shutil.rmtree(dest, ignore_errors=True)
            partial.rename(dest)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        cache.mark_complete(dest)
        return dest

    def _load_or_explain(self, config: ModelConfigBase, path: Path, submodel_type: Optional[SubModelType]) -> Any:
        variant = getattr(config, "repo_variant", None)
        # DEFAULT means "the unqualified files": no variant for from_pretrained
        model_variant = None if variant in (None, ModelRepoVariant.DEFAULT) else ModelRepoVariant(variant)
        try:
            return self._load_model(path, model_variant, submodel_type)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - every loader failure names the model
            raise LoadError(f"could not load {config.name!r} ({config.type.value}, {config.format.value}) "
                            f"from {path}: {type(exc).__name__}: {exc}") from exc

    # --- for subclasses ------------------------------------------------------------------------
    def get_size_fs(self, config: ModelConfigBase, model_path: Path, submodel_type: Optional[SubModelType] = None) -> int:
        """Bytes the model will take once loaded, guessed from its files (for make_room)."""
        if submodel_type is not None and model_path.is_dir() and (model_path / submodel_type.value).is_dir():
            return files_size(model_path / submodel_type.value)
        return files_size(model_path)

    def _get_hf_load_class(self, model_path: Path, submodel_type: Optional[SubModelType] = None) -> Any:
        """The diffusers or transformers class a folder's ``config.json`` names (the seed's
        ``GenericDiffusersLoader`` example calls this)."""
        from reconciler.load.model_loaders.common import hf_class_of

        folder = model_path / submodel_type.value if submodel_type is not None else model_path
        return hf_class_of(folder)

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement _load_model")

    def _needs_conversion(self, config: ModelConfigBase, model_path: Path, dest_path: Path) -> bool:
        return False

    def _convert_model(self, config: ModelConfigBase, model_path: Path, output_path: Path) -> Path:
        raise NotImplementedError(f"{type(self).__name__} does not convert models")


__all__ = ["ModelLoader", "files_size", "model_path_of"]
