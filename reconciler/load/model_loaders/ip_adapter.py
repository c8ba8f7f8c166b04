"""IP-Adapters, loaded as their two state dicts: ``{"image_proj": {...}, "ip_adapter": {...}}``.

A checkpoint file holds them flat (``image_proj.proj.weight``, ``ip_adapter.1.to_k_ip.weight``)
or nested (the ``.bin`` pickles of the original repo); InvokeAI's folder layout holds
``ip_adapter.bin`` / ``ip_adapter.safetensors`` beside ``image_encoder.txt``.  Either way the
result is the nested form, floating tensors in the loader's dtype.  The image encoder is a
separate CLIP vision model (named by ``image_encoder_model_id``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from reconciler.errors import LoadError
from reconciler.load.model_loaders.common import cast_floats, no_submodels, read_state_dict
from reconciler.load.model_loaders.raw import StateDictLoader
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType

PARTS = ("image_proj", "ip_adapter")


def split_ip_adapter(state: dict[str, Any], source: Path) -> dict[str, dict[str, Any]]:
    """The nested ``{"image_proj": ..., "ip_adapter": ...}`` form of an IP-Adapter state dict."""
    if all(isinstance(state.get(part), dict) for part in PARTS):
        return {part: dict(state[part]) for part in PARTS}
    out: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
    stray = []
    for key, value in state.items():
        part, _, rest = key.partition(".")
        if part in out and rest:
            out[part][rest] = value
        else:
            stray.append(key)
    if not out["image_proj"] or not out["ip_adapter"]:
        raise LoadError(f"{source}: not an IP-Adapter (needs image_proj.* and ip_adapter.* weights; "
                        f"has {', '.join(sorted(state)[:3])}...)")
    if stray:
        raise LoadError(f"{source}: IP-Adapter file has weights outside image_proj/ip_adapter: {', '.join(stray[:3])}")
    return out


@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.IPAdapter, format=ModelFormat.Checkpoint)
@ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.IPAdapter, format=ModelFormat.InvokeAI)
class IPAdapterLoader(StateDictLoader):
    """IP-Adapter checkpoint files and InvokeAI IP-Adapter folders."""

    folder_stems = ("ip_adapter",)

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        no_submodels(model_path, submodel_type)
        weights = self._weights_file(model_path)
        return cast_floats(split_ip_adapter(read_state_dict(weights), weights), self._torch_dtype)


__all__ = ["IPAdapterLoader", "split_ip_adapter"]
