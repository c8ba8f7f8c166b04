"""LoRA, LyCORIS and textual-inversion models: the seed's "raw" models, loaded as state dicts.

A file is read with ``safetensors.torch.load_file``, or, for ``.pt``/``.ckpt``/``.bin``, scanned
for code-carrying pickles and read with ``torch.load(weights_only=True)``; a folder's weights
file is found by its diffusers name (``pytorch_lora_weights.*``, ``adapter_model.*``,
``learned_embeds.*``).  Floating tensors are cast to the loader's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from reconciler.errors import ModelNotFoundException
from reconciler.load.loader import ModelLoader
from reconciler.load.model_loaders.common import (
    cast_floats,
    first_weights_file,
    no_submodels,
    read_state_dict,
)
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType


class StateDictLoader(ModelLoader):
    """Loads a weights file (or a folder's weights file) as a dict of tensors."""

    #: file stems looked for when the record's path is a folder
    folder_stems: tuple[str, ...] = ()

    def _weights_file(self, model_path: Path) -> Path:
        if model_path.is_file():
            return model_path
        found = first_weights_file(model_path, *self.folder_stems)
        if found is None:
            names = ", ".join(f"{s}.safetensors/.bin" for s in self.folder_stems)
            raise ModelNotFoundException(f"{model_path}: no weights file ({names})")
        return found

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        no_submodels(model_path, submodel_type)
        return cast_floats(read_state_dict(self._weights_file(model_path)), self._torch_dtype)


@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.LoRA, format=ModelFormat.LyCORIS)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.LoRA, format=ModelFormat.Diffusers)
class LoRALoader(StateDictLoader):
    """LoRA / LyCORIS files (kohya, LoHa, LoKr, PEFT keys) and diffusers LoRA folders."""

    folder_stems = ("pytorch_lora_weights", "adapter_model")


@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.TextualInversion, format=ModelFormat.EmbeddingFile)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.TextualInversion,
                              format=ModelFormat.EmbeddingFolder)
class TextualInversionLoader(StateDictLoader):
    """Textual-inversion embeddings: files and diffusers ``learned_embeds.*`` folders."""

    folder_stems = ("learned_embeds",)


__all__ = ["LoRALoader", "StateDictLoader", "TextualInversionLoader"]
