"""VAE checkpoints (one file, LDM key names): converted once with ``AutoencoderKL.from_single_file``
against the base's shipped ``vae/config.json``, then loaded as a diffusers folder.

(VAE folders in diffusers format load through :mod:`.generic_diffusers`.)
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
from reconciler.load.model_loaders.configs import config_folder_name, config_folders
from reconciler.load.model_loaders.single_file import convert_diffusers_model, explicit_config_folder
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType

VAE_BASES = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2, BaseModelType.StableDiffusionXL,
             BaseModelType.StableDiffusionXLRefiner)


class VAECheckpointLoader(ConfigAwareLoader):
    """Converts a VAE checkpoint to a diffusers ``AutoencoderKL`` folder, then loads it."""

    def _needs_conversion(self, config: ModelConfigBase, model_path: Path, dest_path: Path) -> bool:
        return model_path.is_file()

    def _convert_model(self, config: ModelConfigBase, model_path: Path, output_path: Path) -> Path:
        from diffusers import AutoencoderKL

        folders = config_folders(self._app_config, config_folder_name(config.base), explicit_config_folder(config))
        root = folders.require("vae/config.json", f"{config.base.value} VAE checkpoints")
        try:
            checkpoint = read_state_dict(model_path)
            vae = convert_diffusers_model(AutoencoderKL, checkpoint, root, "vae", dominant_float_dtype(checkpoint),
                                          model_path)
            vae.save_pretrained(str(output_path), safe_serialization=True)
        except LoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the model
            raise LoadError(f"could not convert VAE {config.name!r} ({model_path.name}): "
                            f"{type(exc).__name__}: {exc}") from exc
        return output_path

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        from diffusers import AutoencoderKL

        no_submodels(model_path, submodel_type)
        return from_pretrained(AutoencoderKL, model_path, self._torch_dtype, model_variant)


for _base in VAE_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.Vae, format=ModelFormat.Checkpoint)(VAECheckpointLoader)

__all__ = ["VAECheckpointLoader"]
