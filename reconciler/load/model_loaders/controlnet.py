"""ControlNet checkpoints (one file; lllyasviel's ``control_model.*`` LDM layout or diffusers key
names): converted once with ``ControlNetModel.from_single_file`` against the shipped
``controlnet-<base>/config.json``, then loaded as a diffusers folder.

(ControlNet folders in diffusers format load through :mod:`.generic_diffusers`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.errors import LoadError
from reconciler.load.model_loaders._common import (
    ConfigAwareLoader,
    dominant_float_dtype,
    from_pretrained,
    no_submodels,
    read_state_dict,
)
from reconciler.load.model_loaders.configs import config_folders, controlnet_config_name
from reconciler.load.model_loaders.single_file import convert_diffusers_model, explicit_config_folder
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType

CONTROLNET_BASES = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2, BaseModelType.StableDiffusionXL)


class ControlNetCheckpointLoader(ConfigAwareLoader):
    """Converts a ControlNet checkpoint to a diffusers ``ControlNetModel`` folder, then loads it."""

    def _needs_conversion(self, config: ModelConfigBase, model_path: Path, dest_path: Path) -> bool:
        return model_path.is_file()

    def _convert_model(self, config: ModelConfigBase, model_path: Path, output_path: Path) -> Path:
        from diffusers import ControlNetModel

        folders = config_folders(self._app_config, controlnet_config_name(config.base), explicit_config_folder(config))
        root = folders.require("config.json", f"{config.base.value} ControlNet checkpoints")
        try:
            checkpoint = read_state_dict(model_path)
            model = convert_diffusers_model(ControlNetModel, checkpoint, root, None, dominant_float_dtype(checkpoint),
                                            model_path)
            model.save_pretrained(str(output_path), safe_serialization=True)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the model
            raise LoadError(f"could not convert ControlNet {config.name!r} ({model_path.name}): "
                            f"{type(exc).__name__}: {exc}") from exc
        return output_path

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        from diffusers import ControlNetModel

        no_submodels(model_path, submodel_type)
        return from_pretrained(ControlNetModel, model_path, self._torch_dtype, model_variant)


for _base in CONTROLNET_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.ControlNet,
                                 format=ModelFormat.Checkpoint)(ControlNetCheckpointLoader)

__all__ = ["ControlNetCheckpointLoader"]
