"""Helpers every shipped loader shares: reading weight files safely, repo variants, classes by name.

torch, diffusers and transformers are imported inside the functions.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.errors import LoadError
from reconciler.load.loaded import LoadedModel
from reconciler.load.loader import ModelLoader
from reconciler.taxonomy import ModelRepoVariant, SubModelType

#: weight file suffixes a loader reads (safetensors first: no pickle at all)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


class ConfigAwareLoader(ModelLoader):
    """A loader that keeps the record it is loading, for loaders whose ``_load_model`` needs more
    than the path (the base, the prediction type, where the single-file configs are).

    The service makes one loader per ``load_model`` call, so the record stays that call's.
    """

    _config: Optional[ModelConfigBase] = None

    def load_model(self, model_config: ModelConfigBase, submodel_type: Optional[SubModelType] = None) -> LoadedModel:
        self._config = model_config
        return super().load_model(model_config, submodel_type)

    def _require_config(self) -> ModelConfigBase:
        if self._config is None:
            raise LoadError(f"{type(self).__name__} loads through load_model(config), not _load_model alone")
        return self._config


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (LoadError naming the file when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(f"{path}: not readable JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise LoadError(f"{path}: not a JSON object")
    return data


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of one weights file, on the CPU (:func:`reconciler.load.weights.read_weights`:
    safetensors, or a pickle scanned for code and read with ``torch.load(weights_only=True)``),
    with a Lightning-style ``{"state_dict": {...}}`` unwrapped."""
    from reconciler.load.weights import read_weights

    obj: Any = read_weights(path)
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise LoadError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def first_weights_file(folder: Path, *stems: str) -> Optional[Path]:
    """``folder/<stem><suffix>`` for the first stem and suffix that exists."""
    for stem in stems:
        for suffix in WEIGHT_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def cast_floats(obj: Any, dtype: Any) -> Any:
    """``obj`` (a tensor or nested dicts of them) with floating tensors cast to ``dtype``."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.dtype != dtype else obj
    if isinstance(obj, dict):
        return {k: cast_floats(v, dtype) for k, v in obj.items()}
    return obj


def dominant_float_dtype(state_dict: dict[str, Any]) -> Any:
    """The floating dtype holding most of a state dict's elements (float32 when there is none)."""
    import torch

    count: Counter[Any] = Counter()
    for value in state_dict.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            count[value.dtype] += value.numel()
    return count.most_common(1)[0][0] if count else torch.float32


def variant_files_in(folder: Path, variant: Optional[ModelRepoVariant | str]) -> Optional[str]:
    """``variant`` (e.g. ``fp16``) when ``folder`` holds weights named ``*.<variant>.<ext>``, else None.

    diffusers/transformers take the default weights when ``variant`` is None; asking for a
    variant a component lacks is an error there, so it is only asked for when present.
    """
    value = getattr(variant, "value", variant)
    if not value or value == ModelRepoVariant.DEFAULT.value or not folder.is_dir():
        return None
    for path in folder.iterdir():
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES and f".{value}." in path.name:
            return str(value)
    return None


def import_class(library: str, class_name: str) -> Any:
    """A component class named by a ``model_index.json`` / ``config.json`` entry."""
    if library in ("diffusers", "transformers"):
        module = importlib.import_module(library)
    else:  # e.g. ["stable_diffusion", "StableDiffusionSafetyChecker"]: a diffusers pipeline module
        module = importlib.import_module(f"diffusers.pipelines.{library}")
    found = getattr(module, class_name, None)
    if found is None and class_name.endswith("FeatureExtractor"):
        # transformers 5 removed the *FeatureExtractor aliases older model_index.json files name
        # (runwayml/stable-diffusion-inpainting: CLIPFeatureExtractor); the image processor replaced them
        found = getattr(module, class_name.removesuffix("FeatureExtractor") + "ImageProcessor", None)
    if found is None:
        raise LoadError(f"{library} has no class {class_name!r}")
    return found


def hf_class_of(folder: Path) -> Any:
    """The diffusers or transformers class a single-model folder's ``config.json`` names."""
    conf = read_json(folder / "config.json")
    if conf.get("_class_name"):
        return import_class("diffusers", str(conf["_class_name"]))
    architectures = conf.get("architectures") or []
    if architectures:
        return import_class("transformers", str(architectures[0]))
    raise LoadError(f"{folder / 'config.json'} names no _class_name or architectures")


def is_transformers_class(cls: Any) -> bool:
    return cls.__module__.startswith("transformers")


def from_pretrained(cls: Any, folder: Path, dtype: Any, variant: Optional[ModelRepoVariant | str] = None) -> Any:
    """``cls.from_pretrained(folder)`` offline, in ``dtype``, with the repo variant's files when present."""
    kwargs: dict[str, Any] = {"local_files_only": True}
    chosen = variant_files_in(folder, variant)
    if chosen:
        kwargs["variant"] = chosen
    if is_transformers_class(cls):
        kwargs["dtype"] = dtype
    else:
        kwargs["torch_dtype"] = dtype
    model = cls.from_pretrained(str(folder), **kwargs)
    if hasattr(model, "eval"):
        model.eval()
    return model


def is_tokenizer_class(cls: Any) -> bool:
    """A transformers tokenizer class (they load from vocabulary files, not weights)."""
    return any(k.__name__ in ("PreTrainedTokenizerBase", "TokenizersBackend") for k in getattr(cls, "__mro__", ()))


def check_tokenizer(tokenizer: Any, where: Path | str) -> None:
    """MissingLoadFilesError for a tokenizer without a vocabulary.

    transformers 5 builds a CLIP tokenizer from a folder (or repo id) that lacks ``vocab.json``
    without an error: it holds only its special tokens and turns every prompt into
    end-of-text tokens.  Such a tokenizer is refused here.
    """
    from reconciler.errors import MissingLoadFilesError

    if len(tokenizer) <= len(set(getattr(tokenizer, "all_special_tokens", []))) + 2:
        raise MissingLoadFilesError(
            f"{where}: the tokenizer there has no vocabulary ({len(tokenizer)} tokens); its vocab.json / merges.txt "
            f"(or tokenizer.json) are missing")


def no_submodels(model_path: Path, submodel_type: Optional[SubModelType]) -> None:
    if submodel_type is not None:
        raise LoadError(f"{model_path} is a single model: it has no submodel {submodel_type.value!r}")


__all__ = ["ConfigAwareLoader", "WEIGHT_SUFFIXES", "cast_floats", "dominant_float_dtype", "first_weights_file",
           "check_tokenizer", "from_pretrained", "hf_class_of", "import_class", "is_tokenizer_class",
           "is_transformers_class", "no_submodels", "read_json",
           "read_state_dict", "variant_files_in"]
