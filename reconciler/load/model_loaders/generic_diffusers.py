"""Single-model diffusers/transformers folders: VAE, ControlNet, T2I adapter, CLIP vision.

The folder's ``config.json`` names the class (``_class_name`` for diffusers, ``architectures`` for
transformers); it is loaded with that class's ``from_pretrained`` offline, in the loader's dtype,
with the repo variant's files when the folder has them (the seed's GenericDiffusersLoader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from reconciler.errors import ModelNotFoundException
from reconciler.load.loader import ModelLoader
from reconciler.load.model_loaders.common import from_pretrained, hf_class_of, no_submodels
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType


@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.Vae, format=ModelFormat.Diffusers)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.ControlNet, format=ModelFormat.Diffusers)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.T2IAdapter, format=ModelFormat.Diffusers)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.CLIPVision, format=ModelFormat.Diffusers)
class GenericDiffusersLoader(ModelLoader):
    """Loads a folder holding one diffusers or transformers model."""

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        no_submodels(model_path, submodel_type)
        if not (model_path / "config.json").is_file():
            raise ModelNotFoundException(f"{model_path}: no config.json, not a diffusers/transformers model folder")
        return from_pretrained(hf_class_of(model_path), model_path, self._torch_dtype, model_variant)


__all__ = ["GenericDiffusersLoader"]
