"""The shared shape of loaders for one-model checkpoints (a VAE, a ControlNet): convert the
file once into a diffusers folder against a shipped config, then load that folder.

A subclass names the diffusers class, the config folder and file, and what it is called
in messages; :mod:`.vae` and :mod:`.controlnet` are the two.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.load.model_loaders.common import (
    ConfigAwareLoader,
    dominant_float_dtype,
    from_pretrained,
    no_submodels,
    read_state_dict,
)
from reconciler.load.model_loaders.configs import config_folders
from reconciler.load.model_loaders.single_file import convert_diffusers_model, explicit_config_folder
from reconciler.taxonomy import BaseModelType, ModelRepoVariant, SubModelType


class OneModelCheckpointLoader(ConfigAwareLoader):
    """Converts a one-model checkpoint to a diffusers folder, then loads it."""

    #: the diffusers class (by name: diffusers is imported only when a model loads)
    model_class_name: str = ""
    #: the model's kind in messages ("VAE", "ControlNet")
    what: str = ""
    #: the config file inside the config folder, and the subfolder the class reads it from
    config_file: str = "config.json"
    subfolder: Optional[str] = None

    def config_name(self, base: BaseModelType) -> str:
        """The shipped config folder for ``base``."""
        raise NotImplementedError

    def _model_class(self) -> Any:
        return getattr(importlib.import_module("diffusers"), self.model_class_name)

    def _needs_conversion(self, config: ModelConfigBase, model_path: Path, dest_path: Path) -> bool:
        return model_path.is_file()

    def _convert_model(self, config: ModelConfigBase, model_path: Path, output_path: Path) -> Path:
        folders = config_folders(self._app_config, self.config_name(config.base), explicit_config_folder(config))
        root = folders.require(self.config_file, f"{config.base.value} {self.what} checkpoints")
        checkpoint = read_state_dict(model_path)  # a failure: ModelLoader names the model and the file
        model = convert_diffusers_model(self._model_class(), checkpoint, root, self.subfolder,
                                        dominant_float_dtype(checkpoint), model_path)
        model.save_pretrained(str(output_path), safe_serialization=True)
        return output_path

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        no_submodels(model_path, submodel_type)
        return from_pretrained(self._model_class(), model_path, self._torch_dtype, model_variant)


__all__ = ["OneModelCheckpointLoader"]
