"""Main models as diffusers pipeline folders: the whole pipeline, or one of its submodels.

``model_index.json`` names each component's library and class (``["diffusers", "UNet2DConditionModel"]``,
``["transformers", "CLIPTextModel"]``); a submodel is loaded from its subfolder with that class's
``from_pretrained`` (offline, in the loader's dtype, with the repo variant's ``*.fp16.*`` files
where the component has them).  With no submodel the whole pipeline is assembled from the same
components (``DiffusionPipeline.from_pretrained`` with every component passed in), so both paths
read the same files the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from reconciler.errors import LoadError, ModelNotFoundException
from reconciler.load.model_loaders.common import (
    ConfigAwareLoader,
    check_tokenizer,
    from_pretrained,
    import_class,
    is_tokenizer_class,
    read_json,
)
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType

MAIN_BASES = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2, BaseModelType.StableDiffusionXL,
              BaseModelType.StableDiffusionXLRefiner)


def pipeline_components(index: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``{component: (library, class)}`` of a ``model_index.json``, null components left out."""
    found: dict[str, tuple[str, str]] = {}
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, (list, tuple)) or len(entry) != 2:
            continue
        library, class_name = entry
        if library is None or class_name is None:
            continue
        found[name] = (str(library), str(class_name))
    return found


def load_component(folder: Path, name: str, library: str, class_name: str, dtype: Any,
                   variant: Optional[ModelRepoVariant | str]) -> Any:
    """One pipeline component from ``folder/name``."""
    import torch

    cls = import_class(library, class_name)
    sub = folder / name
    if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
        return from_pretrained(cls, sub, dtype, variant)
    if hasattr(cls, "from_config") and (sub / "scheduler_config.json").is_file():  # a scheduler
        return cls.from_pretrained(str(folder), subfolder=name, local_files_only=True)
    loaded = cls.from_pretrained(str(sub), local_files_only=True)  # tokenizers, image processors
    if is_tokenizer_class(cls):
        check_tokenizer(loaded, sub)
    return loaded


class MainDiffusersLoader(ConfigAwareLoader):
    """Loads a diffusers pipeline folder (``submodel_type=None``) or one of its components."""

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        index_path = model_path / "model_index.json"
        if not index_path.is_file():
            raise ModelNotFoundException(f"{model_path}: no model_index.json, not a diffusers pipeline folder")
        index = read_json(index_path)
        components = pipeline_components(index)
        if submodel_type is not None:
            entry = components.get(submodel_type.value)
            if entry is None:
                raise LoadError(f"{model_path}: the pipeline has no {submodel_type.value} "
                                f"(it has {', '.join(sorted(components)) or 'no components'})")
            return self._component(model_path, submodel_type.value, *entry, model_variant)
        loaded = {name: self._component(model_path, name, *entry, model_variant)
                  for name, entry in sorted(components.items())}
        return self._assemble(model_path, index, loaded)

    def _component(self, folder: Path, name: str, library: str, class_name: str,
                   variant: Optional[ModelRepoVariant]) -> Any:
        if not (folder / name).is_dir():
            return self._missing_component(folder, name, library, class_name)
        return load_component(folder, name, library, class_name, self._torch_dtype, variant)

    def _missing_component(self, folder: Path, name: str, library: str, class_name: str) -> Any:
        raise ModelNotFoundException(f"{folder}: model_index.json lists {name} ({class_name}) but "
                                     f"{folder / name} is missing")

    def _assemble(self, folder: Path, index: dict[str, Any], components: dict[str, Any]) -> Any:
        from diffusers import DiffusionPipeline

        pipeline_class = import_class("diffusers", str(index.get("_class_name") or "DiffusionPipeline"))
        if not issubclass(pipeline_class, DiffusionPipeline):
            raise LoadError(f"{folder}: {pipeline_class.__name__} is not a diffusers pipeline")
        return pipeline_class.from_pretrained(str(folder), local_files_only=True, **components)


for _base in MAIN_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.Main, format=ModelFormat.Diffusers)(MainDiffusersLoader)

__all__ = ["MAIN_BASES", "MainDiffusersLoader", "load_component", "pipeline_components"]
