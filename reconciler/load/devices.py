"""Devices, precision and sizes: the few torch facts every loader and the cache share.

torch is imported inside the functions, so importing this module stays cheap; everything
in :mod:`reconciler.load` runs only when a model is actually loaded.
"""

from __future__ import annotations

from typing import Any

#: bytes in one of the GB the settings speak of (``ram_cache_size: 6.0``)
GB = 2**30


def choose_device(setting: str = "auto") -> Any:
    """The execution device for ``setting`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

    ``auto`` takes CUDA when present, else Apple's MPS, else the CPU.
    """
    import torch

    if setting and setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(precision: str, device: Any) -> Any:
    """The torch dtype for ``precision`` (``auto``, ``float16``, ``bfloat16``, ``float32``).

    ``auto`` is float16 on CUDA and MPS and float32 on the CPU, where half precision is
    slow and some kernels are missing.
    """
    import torch

    table = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
             "float32": torch.float32, "fp32": torch.float32}
    if precision in table:
        return table[precision]
    kind = getattr(device, "type", str(device))
    return torch.float16 if kind in ("cuda", "mps") else torch.float32


def same_device(a: Any, b: Any) -> bool:
    """True when two devices are the same place (``cuda`` and ``cuda:0`` count as one)."""
    import torch

    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def _tensors(model: Any) -> list[Any]:
    """The tensors a loaded model holds: parameters and buffers of modules (each once),
    the values of a state dict, the components of a pipeline; [] for the rest."""
    import torch

    if isinstance(model, torch.Tensor):
        return [model]
    if isinstance(model, torch.nn.Module):
        seen: dict[int, Any] = {}
        for t in list(model.parameters()) + list(model.buffers()):
            seen.setdefault(id(t), t)
        return list(seen.values())
    if isinstance(model, dict):
        found: list[Any] = []
        for value in model.values():
            found.extend(_tensors(value))
        return found
    if isinstance(model, (list, tuple)):
        return [t for item in model for t in _tensors(item)]
    components = getattr(model, "components", None)  # a diffusers pipeline
    if isinstance(components, dict):
        return [t for part in components.values() for t in _tensors(part)]
    return []


def model_size(model: Any) -> int:
    """Bytes of the tensors a model holds (tokenizers and schedulers count as 0)."""
    seen: set[int] = set()
    total = 0
    for t in _tensors(model):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def move_model(model: Any, device: Any) -> Any:
    """``model`` on ``device``: modules and pipelines move in place, state dicts are rebuilt.

    Returns the model to use from now on (the same object, except for dicts of tensors).
    """
    import torch

    if isinstance(model, torch.Tensor):
        return model.to(device)
    if isinstance(model, torch.nn.Module) or hasattr(model, "components"):
        model.to(device)
        return model
    if isinstance(model, dict):
        return {k: move_model(v, device) for k, v in model.items()}
    return model


def model_device(model: Any) -> Any:
    """Where a model's tensors are (the first one's device); CPU for a model without any."""
    import torch

    tensors = _tensors(model)
    return tensors[0].device if tensors else torch.device("cpu")


def free_accelerator_memory(device: Any) -> None:
    """Give freed CUDA/MPS blocks back to the driver after an offload or eviction."""
    import torch

    kind = getattr(device, "type", str(device))
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


__all__ = ["GB", "choose_device", "choose_dtype", "free_accelerator_memory", "model_device", "model_size",
           "move_model", "same_device"]
