"""Main models in one checkpoint file (sd-1, sd-2 incl. v-prediction, sdxl, sdxl-refiner; normal,
inpaint and depth variants), converted once to a diffusers folder in the convert cache.

The conversion is diffusers' own ``from_single_file`` (LDM/SGM key names to diffusers), run per
component against a *local* diffusers config folder (see :mod:`.configs`) with
``local_files_only=True``, so it never reaches the Hub:

* ``unet``, ``vae``: ``<Class>.from_single_file(state_dict, config=<folder>, subfolder=...)``;
* ``text_encoder`` / ``text_encoder_2``: diffusers' ``create_diffusers_clip_model_from_ldm`` (what
  the pipeline-level ``from_single_file`` calls for CLIP models);
* ``scheduler``: the config folder's scheduler config with the record's ``prediction_type``.

Each converted component is checked against the checkpoint: diffusers fills a weight the
checkpoint lacks with random values and only logs unused ones, so the loader compares the
model's weight names with those the checkpoint supplies and refuses an incomplete checkpoint.
A component the checkpoint holds no weights for at all (an sdxl file without its text encoders)
is left out of the conversion; loading it later says so.

Tokenizers and sd-2-depth's depth estimator carry no weights in a checkpoint: they are not part
of the conversion and are resolved when loaded (config folders, then the offline HF cache), so a
tokenizer provided later needs no new conversion.  Per component rather than through the
pipeline-level ``from_single_file`` for that reason: that call needs every tokenizer up front,
and a UNet or VAE should load from a checkpoint whether or not a tokenizer is on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.errors import LoadError, MissingLoadFilesError
from reconciler.load.model_loaders.common import (
    dominant_float_dtype,
    import_class,
    read_json,
    read_state_dict,
)
from reconciler.load.model_loaders.configs import (
    ConfigFolders,
    config_folder_name,
    config_folders,
    find_extra_component,
)
from reconciler.load.model_loaders.diffusers_pipeline import (
    MAIN_BASES,
    MainDiffusersLoader,
    pipeline_components,
)
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

#: the components whose weights a main checkpoint holds
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")
#: components a converted pipeline never carries (a checkpoint has no safety checker)
DROPPED_COMPONENTS = ("safety_checker",)
#: key prefixes of each text encoder in the original layouts: (prefix, "clip" | "open_clip")
TEXT_ENCODER_PREFIXES: dict[tuple[BaseModelType, str], tuple[str, str]] = {
    (BaseModelType.StableDiffusion1, "text_encoder"): ("cond_stage_model.transformer.", "clip"),
    (BaseModelType.StableDiffusion2, "text_encoder"): ("cond_stage_model.model.", "open_clip"),
    (BaseModelType.StableDiffusionXL, "text_encoder"): ("conditioner.embedders.0.transformer.", "clip"),
    (BaseModelType.StableDiffusionXL, "text_encoder_2"): ("conditioner.embedders.1.model.", "open_clip"),
    (BaseModelType.StableDiffusionXLRefiner, "text_encoder_2"): ("conditioner.embedders.0.model.", "open_clip"),
}
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIXES = ("first_stage_model.", "vae.")
CONVERSION_NOTE = "reconciler_conversion.json"


def explicit_config_folder(config: ModelConfigBase) -> Optional[str]:
    """A record's ``config`` when it names a diffusers folder (a legacy YAML path is ignored)."""
    value = getattr(config, "config", None)
    if value and not str(value).endswith((".yaml", ".yml")):
        return str(value)
    return None


def check_complete(component: str, model: Any, supplied: set[str], source: Path) -> None:
    """LoadError when ``model`` has weights the checkpoint did not supply (diffusers would keep
    them randomly initialised without a word)."""
    expected = set(model.state_dict())
    missing = sorted(k for k in expected - supplied if not k.endswith("position_ids"))
    if missing:
        raise LoadError(
            f"{source.name}: the checkpoint's {component} is incomplete: {len(missing)} of {len(expected)} weights "
            f"are missing (first: {', '.join(missing[:3])}); the file is truncated, holds only part of the model, or "
            f"does not match the {component} config it is converted with")


def supplied_diffusers_keys(cls: Any, model: Any, checkpoint: dict[str, Any]) -> set[str]:
    """The diffusers weight names diffusers' mapping function produces from ``checkpoint``."""
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    model_keys = set(model.state_dict())
    if model_keys <= set(checkpoint):  # already in diffusers layout: loaded as is
        return set(checkpoint)
    mapping = SINGLE_FILE_LOADABLE_CLASSES[_loadable_name(cls)]["checkpoint_mapping_fn"]
    return set(mapping(config=dict(model.config), checkpoint=checkpoint))


def _loadable_name(cls: Any) -> str:
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    for klass in cls.__mro__:
        if klass.__name__ in SINGLE_FILE_LOADABLE_CLASSES:
            return klass.__name__
    raise LoadError(f"diffusers cannot convert {cls.__name__} from a single file")


def supplied_clip_keys(model: Any, checkpoint: dict[str, Any], prefix: str, kind: str) -> set[str]:
    """The transformers weight names diffusers' CLIP conversion produces from ``checkpoint``."""
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

    if kind == "clip":
        keys = {k[len(prefix):] for k in checkpoint if k.startswith(prefix)}
    else:
        keys = set(convert_open_clip_checkpoint(model, checkpoint, prefix=prefix))
    if not hasattr(model, "text_model"):  # transformers >= 5 flattened CLIPTextModel
        keys = {k.removeprefix("text_model.") for k in keys}
    return keys


def convert_diffusers_model(cls: Any, checkpoint: dict[str, Any], root: Path, subfolder: Optional[str],
                            dtype: Any, source: Path, **model_kwargs: Any) -> Any:
    """``cls.from_single_file`` against the local config ``root/subfolder``; refuses an incomplete checkpoint."""
    kwargs: dict[str, Any] = {"config": str(root), "local_files_only": True, "torch_dtype": dtype, **model_kwargs}
    if subfolder:
        kwargs["subfolder"] = subfolder
    model = cls.from_single_file(checkpoint, **kwargs)
    check_complete(subfolder or cls.__name__, model, supplied_diffusers_keys(cls, model, checkpoint), source)
    return model


class MainCheckpointLoader(MainDiffusersLoader):
    """Converts a main checkpoint to a diffusers pipeline folder (once), then loads it like one."""

    def _needs_conversion(self, config: ModelConfigBase, model_path: Path, dest_path: Path) -> bool:
        return model_path.is_file()

    def _folders(self, config: ModelConfigBase) -> ConfigFolders:
        name = config_folder_name(config.base, getattr(config, "variant", None), getattr(config, "prediction_type", None))
        return config_folders(self._app_config, name, explicit_config_folder(config))

    def _convert_model(self, config: ModelConfigBase, model_path: Path, output_path: Path) -> Path:
        # a failure here reaches ModelLoader, which names the model and the file (one place)
        folders = self._folders(config)
        what = f"{config.base.value} {getattr(config, 'variant', 'normal')} checkpoints ({folders.name})"
        index_root = folders.require("model_index.json", what)
        index = read_json(index_root / "model_index.json")
        components = pipeline_components(index)
        checkpoint = read_state_dict(model_path)
        dtype = dominant_float_dtype(checkpoint)
        output_path.mkdir(parents=True, exist_ok=True)
        converted: list[str] = []
        absent: list[str] = []
        roots: dict[str, str] = {"model_index.json": str(index_root)}
        for name in WEIGHT_COMPONENTS:
            if name not in components:
                continue
            if not self._has_weights(config.base, name, checkpoint):
                absent.append(name)
                continue
            root = folders.require(f"{name}/config.json", what)
            roots[name] = str(root)
            model = self._convert_component(config, name, components[name], checkpoint, root, dtype, model_path)
            model.save_pretrained(str(output_path / name), safe_serialization=True)
            converted.append(name)
            del model
        if "unet" in absent:
            raise LoadError(f"{model_path.name}: holds no UNet weights ({UNET_PREFIX}*): not a main checkpoint")
        if "scheduler" in components:
            root = folders.require("scheduler/scheduler_config.json", what)
            roots["scheduler"] = str(root)
            scheduler = read_json(root / "scheduler" / "scheduler_config.json")
            scheduler["prediction_type"] = config.prediction_type.value  # type: ignore[attr-defined]
            _write_json(output_path / "scheduler" / "scheduler_config.json", scheduler)
        out_index = dict(index)
        for name in DROPPED_COMPONENTS:
            if name in out_index:
                out_index[name] = [None, None]
        if "safety_checker" in index:
            out_index["requires_safety_checker"] = False
            if not index.get("_class_name", "").endswith("Depth2ImgPipeline") and "feature_extractor" in out_index:
                out_index["feature_extractor"] = [None, None]  # the safety checker's image processor
        _write_json(output_path / "model_index.json", out_index)
        _write_json(output_path / CONVERSION_NOTE, {
            "source": str(model_path), "configs": folders.name, "config_roots": roots, "converted": converted,
            "absent_in_checkpoint": absent, "dtype": str(dtype).removeprefix("torch."),
            "prediction_type": config.prediction_type.value,  # type: ignore[attr-defined]
        })
        return output_path

    @staticmethod
    def _has_weights(base: BaseModelType, name: str, checkpoint: dict[str, Any]) -> bool:
        if name == "unet":
            prefixes: tuple[str, ...] = (UNET_PREFIX,)
        elif name == "vae":
            prefixes = VAE_PREFIXES
        else:
            entry = TEXT_ENCODER_PREFIXES.get((base, name))
            if entry is None:
                return False
            prefixes = (entry[0],)
        return any(k.startswith(prefixes) for k in checkpoint)

    def _convert_component(self, config: ModelConfigBase, name: str, entry: tuple[str, str],
                           checkpoint: dict[str, Any], root: Path, dtype: Any, source: Path) -> Any:
        library, class_name = entry
        cls = import_class(library, class_name)
        if name == "unet":
            return convert_diffusers_model(cls, checkpoint, root, name, dtype, source,
                                           upcast_attention=bool(getattr(config, "upcast_attention", False)))
        if name == "vae":
            return convert_diffusers_model(cls, checkpoint, root, name, dtype, source)
        from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

        prefix, kind = TEXT_ENCODER_PREFIXES[(config.base, name)]
        model = create_diffusers_clip_model_from_ldm(cls, checkpoint, subfolder=name, config=str(root),
                                                     torch_dtype=dtype, local_files_only=True)
        check_complete(name, model, supplied_clip_keys(model, checkpoint, prefix, kind), source)
        return model

    def _missing_component(self, folder: Path, name: str, library: str, class_name: str) -> Any:
        config = self._require_config()
        if name in WEIGHT_COMPONENTS:
            raise MissingLoadFilesError(
                f"{config.name!r}: the checkpoint holds no {name} weights, so its pipeline has no {name}; load "
                f"the other submodels, or pair it with a separate {name} model")
        return find_extra_component(self._folders(config), config.base, name, library, class_name, self._torch_dtype)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


for _base in MAIN_BASES:
    ModelLoaderRegistry.register(base=_base, type=ModelType.Main, format=ModelFormat.Checkpoint)(MainCheckpointLoader)

__all__ = ["MainCheckpointLoader", "WEIGHT_COMPONENTS", "check_complete", "convert_diffusers_model",
           "explicit_config_folder"]
