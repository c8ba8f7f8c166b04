"""LoadedModel: what ``load_model`` returns, the seed's context manager.

``with loaded as model:`` moves the model to the execution device and locks it there for
the block; on exit it is unlocked (and may be offloaded or evicted later).  Until the
caller's first ``with`` block ends (or the caller drops the object) the cache keeps the
model *pinned*, so nothing evicts it between ``load_model`` and ``with``.  Entering again
after the model was evicted loads it again through the loader that loaded it.

``LoadedModel(config, model)`` also works on its own, as a plain holder of a model that no
cache manages (the seed's constructor).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.load.cache import CacheRecord, ModelCache


class LoadedModel:
    """A loaded model and its config; a context manager that holds it on the execution device."""

    def __init__(
        self,
        config: Optional[ModelConfigBase],
        model: Any = None,
        *,
        cache: Optional[ModelCache] = None,
        record: Optional[CacheRecord] = None,
        reload: Optional[Callable[[], tuple[CacheRecord, bool]]] = None,
        cache_hit: bool = False,
    ) -> None:
        self.config = config
        #: True when ``load_model`` found the model in the cache (nothing was read from disk)
        self.cache_hit = cache_hit
        self._model = model
        self._cache = cache
        self._record = record
        self._reload = reload
        self._lock = threading.Lock()
        self._pinned = record is not None and cache is not None
        self._depth = 0
        self._finalizer: Optional[weakref.finalize] = None
        if self._pinned:
            self._finalizer = weakref.finalize(self, cache.release, record)  # type: ignore[union-attr]

    # --- what the model is ---------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model object (reloaded if the cache evicted it since)."""
        if self._cache is None:
            return self._model
        return self._live_record().model

    @property
    def cache_record(self) -> Optional[CacheRecord]:
        """The cache entry behind this object (None for a plain ``LoadedModel(config, model)``)."""
        return self._record

    def _live_record(self) -> CacheRecord:
        record = self._record
        if record is not None and not record.evicted:
            return record
        if self._reload is None:
            raise KeyError("model was evicted from the cache and cannot be reloaded")
        record, _hit = self._reload()
        self._release_pin()
        self._record = record
        self._pinned = True
        self._finalizer = weakref.finalize(self, self._cache.release, record)  # type: ignore[union-attr]
        return record

    def _release_pin(self) -> None:
        if self._pinned and self._finalizer is not None:
            self._finalizer()  # calls cache.release(record) once
        self._pinned = False
        self._finalizer = None

    # --- the seed's context managers ---------------------------------------------------------
    def __enter__(self) -> Any:
        if self._cache is None:
            return self._model
        with self._lock:
            while True:
                record = self._live_record()
                try:
                    model = self._cache.lock(record)
                    break
                except KeyError:  # evicted between the check and the lock: load again
                    continue
            self._depth += 1
            return model

    def __exit__(self, *exc: object) -> None:
        if self._cache is None or self._record is None:
            return
        with self._lock:
            self._cache.unlock(self._record)
            self._depth -= 1
            if self._depth == 0:
                self._release_pin()

    @contextmanager
    def model_on_device(self) -> Iterator[tuple[Optional[dict[str, Any]], Any]]:
        """Yield ``(state dict on the CPU or None, model on the execution device)``.

        The CPU state dict lets a caller restore weights after patching them (LoRA); it is
        None for models that have none (state dicts of LoRAs, tokenizers, schedulers).
        """
        with self as model:
            record = self._record
            state = record.cpu_state_dict if record is not None else None
            if state is None:
                state = _state_dict_on_cpu(model)
            yield state, model

    def release(self) -> None:
        """Let the cache evict this model before the object is dropped (warm-up uses it)."""
        with self._lock:
            if self._depth == 0:
                self._release_pin()

    def __repr__(self) -> str:
        name = getattr(self.config, "name", None)
        return f"<LoadedModel {name!r} {type(self._model if self._cache is None else self.model).__name__}>"


def _state_dict_on_cpu(model: Any) -> Optional[dict[str, Any]]:
    import torch

    if isinstance(model, torch.nn.Module):
        state = model.state_dict()
        if all(t.device.type == "cpu" for t in state.values()):
            return state
        return {k: v.detach().to("cpu") for k, v in state.items()}
    return None


__all__ = ["LoadedModel"]
