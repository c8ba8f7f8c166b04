"""ControlNet checkpoints (one file; lllyasviel's ``control_model.*`` LDM layout or diffusers key
names): converted once with ``ControlNetModel.from_single_file`` against the shipped
``controlnet-<base>/config.json``, then loaded as a diffusers folder.

(ControlNet folders in diffusers format load through :mod:`.generic_diffusers`.)
"""

from __future__ import annotations

from reconciler.load.model_loaders.configs import controlnet_config_name
from reconciler.load.model_loaders.one_file import OneModelCheckpointLoader
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

CONTROLNET_BASES = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2, BaseModelType.StableDiffusionXL)


class ControlNetCheckpointLoader(OneModelCheckpointLoader):
    """Converts a ControlNet checkpoint to a diffusers ``ControlNetModel`` folder, then loads it."""

    model_class_name = "ControlNetModel"
    what = "ControlNet"
    config_file = "config.json"
    subfolder = None

    def config_name(self, base: BaseModelType) -> str:
        return controlnet_config_name(base)


for _base in CONTROLNET_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.ControlNet,
                                 format=ModelFormat.Checkpoint)(ControlNetCheckpointLoader)

__all__ = ["ControlNetCheckpointLoader"]
