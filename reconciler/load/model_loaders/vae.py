"""VAE checkpoints (one file, LDM key names): converted once with ``AutoencoderKL.from_single_file``
against the base's shipped ``vae/config.json``, then loaded as a diffusers folder.

(VAE folders in diffusers format load through :mod:`.generic_diffusers`.)
"""

from __future__ import annotations

from reconciler.load.model_loaders.configs import config_folder_name
from reconciler.load.model_loaders.one_file import OneModelCheckpointLoader
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

VAE_BASES = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2, BaseModelType.StableDiffusionXL,
             BaseModelType.StableDiffusionXLRefiner)


class VAECheckpointLoader(OneModelCheckpointLoader):
    """Converts a VAE checkpoint to a diffusers ``AutoencoderKL`` folder, then loads it."""

    model_class_name = "AutoencoderKL"
    what = "VAE"
    config_file = "vae/config.json"
    subfolder = "vae"

    def config_name(self, base: BaseModelType) -> str:
        return config_folder_name(base)


for _base in VAE_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.Vae, format=ModelFormat.Checkpoint)(VAECheckpointLoader)

__all__ = ["VAECheckpointLoader"]
