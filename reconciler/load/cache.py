"""ModelCache: loaded models kept in RAM (storage device) and moved to VRAM while in use.

Entries are keyed by the record key and the submodel.  An entry's size is the bytes of its
tensors (a pipeline's summed, a tokenizer's or scheduler's about 0).  The rules:

* Room is made *before* a load, from the size of the model's files, so the cache's resident
  bytes stay within ``max_cache_size`` while a new model arrives; once loaded, the entry is
  measured and the budget is checked again.
* Eviction takes the least recently used entries first.  An entry that is *locked* (inside
  ``with loaded_model:``) or *pinned* (returned by ``load_model`` and not yet used) is never
  evicted.  The pin closes InvokeAI's race (their issue #7513), where a model loaded for a
  caller could be evicted by another load before the caller entered it.  A pin ends at the
  caller's first ``with`` block's exit, or when the caller drops its ``LoadedModel``.
* When VRAM is short, unlocked models are moved back to the storage device, least recently
  used first; a locked model is never moved.
* Requests for one entry from several threads load it once: the others wait for the first
  and share its result.  A cache hit touches no file.

With every budget exceeded by locked and pinned entries alone, the cache still admits the
new model (refusing would fail the caller's work) and logs that it is over budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from reconciler.load.devices import (
    GB,
    choose_device,
    free_accelerator_memory,
    model_size,
    move_model,
    same_device,
)
from reconciler.taxonomy import SubModelType

log = logging.getLogger(__name__)


@dataclass(eq=False)
class CacheRecord:
    """One cached model: where it is, how big, and who holds it."""

    key: str
    model: Any
    size: int
    device: Any
    locks: int = 0
    pins: int = 0
    last_used: float = field(default_factory=time.monotonic)
    #: a CPU copy of the weights, kept while the model sits in VRAM (for ``model_on_device``)
    cpu_state_dict: Optional[dict[str, Any]] = None
    evicted: bool = False

    @property
    def locked(self) -> bool:
        return self.locks > 0

    @property
    def held(self) -> bool:
        """Locked or pinned: neither evicted nor offloaded."""
        return self.locks > 0 or self.pins > 0


@dataclass
class CacheStats:
    """Counters for tests, benches and logs."""

    hits: int = 0
    misses: int = 0
    loads: int = 0
    evictions: int = 0
    offloads: int = 0
    high_water: int = 0  # the most bytes ever resident in RAM at once
    over_budget: int = 0  # admissions that left the cache over budget (everything was held)


def cache_key(model_key: str, submodel_type: Optional[SubModelType | str] = None) -> str:
    """``key`` or ``key:submodel`` (one entry per pipeline component)."""
    if submodel_type is None:
        return model_key
    return f"{model_key}:{getattr(submodel_type, 'value', submodel_type)}"


class ModelCache:
    """RAM and VRAM cache of loaded models (sizes in GB, as the seed's settings give them)."""

    def __init__(
        self,
        max_cache_size: float = 6.0,
        max_vram_cache_size: float = 2.0,
        execution_device: Any = None,
        storage_device: Any = "cpu",
        precision: Any = None,
        logger: Optional[logging.Logger] = None,
        lazy_offloading: bool = True,
    ) -> None:
        import torch

        self.max_cache_size = max_cache_size
        self.max_vram_cache_size = max_vram_cache_size
        self.execution_device = torch.device(execution_device) if execution_device is not None else choose_device()
        self.storage_device = torch.device(storage_device)
        self.precision = precision
        self.lazy_offloading = lazy_offloading
        self.logger = logger or log
        self.stats = CacheStats()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._records: OrderedDict[str, CacheRecord] = OrderedDict()  # least recently used first
        self._loading: set[str] = set()
        self._reserved = 0  # bytes of loads in progress (room made for them, not yet admitted)

    # --- budgets -------------------------------------------------------------------------------
    @property
    def max_bytes(self) -> int:
        return int(self.max_cache_size * GB)

    @property
    def max_vram_bytes(self) -> int:
        return int(self.max_vram_cache_size * GB)

    @property
    def _vram_is_separate(self) -> bool:
        return not same_device(self.execution_device, self.storage_device)

    def resident_bytes(self) -> int:
        """Bytes of every cached model (wherever it is: VRAM models keep their RAM budget)."""
        with self._lock:
            return sum(r.size for r in self._records.values())

    def vram_bytes(self) -> int:
        """Bytes of the cached models now on the execution device (0 when it is the CPU)."""
        with self._lock:
            if not self._vram_is_separate:
                return 0
            return sum(r.size for r in self._records.values() if same_device(r.device, self.execution_device))

    # --- lookup --------------------------------------------------------------------------------
    def exists(self, key: str, submodel_type: Optional[SubModelType | str] = None) -> bool:
        with self._lock:
            return cache_key(key, submodel_type) in self._records

    def get(self, key: str, submodel_type: Optional[SubModelType | str] = None) -> CacheRecord:
        """The cached entry (KeyError when not cached); counts as a use."""
        with self._lock:
            record = self._records[cache_key(key, submodel_type)]
            self._touch(record)
            return record

    def keys(self) -> list[str]:
        """Cache keys, least recently used first."""
        with self._lock:
            return list(self._records)

    def _touch(self, record: CacheRecord) -> None:
        record.last_used = time.monotonic()
        self._records.move_to_end(record.key)

    # --- admission -----------------------------------------------------------------------------
    def put(self, key: str, model: Any, submodel_type: Optional[SubModelType | str] = None,
            size: Optional[int] = None) -> CacheRecord:
        """Add an already loaded model (unpinned), making room for it first."""
        size = model_size(model) if size is None else size
        with self._lock:
            self.make_room(size)
            record = self._admit(cache_key(key, submodel_type), model, size, pins=0)
            self._enforce_budget()
            return record

    def get_or_load(self, key: str, submodel_type: Optional[SubModelType | str], load: Callable[[], Any],
                    size_hint: int | Callable[[], int] = 0) -> tuple[CacheRecord, bool]:
        """The entry for ``key``/``submodel_type``, loading it with ``load()`` on a miss.

        Returns ``(record, hit)``; the record comes back pinned for the caller (release it
        with :meth:`release`).  Concurrent calls for one entry run ``load`` once.
        ``size_hint`` (bytes, or a function computing them, called only on a miss) is the
        room made before loading.
        """
        ck = cache_key(key, submodel_type)
        with self._changed:
            while True:
                record = self._records.get(ck)
                if record is not None:
                    record.pins += 1
                    self._touch(record)
                    self.stats.hits += 1
                    return record, True
                if ck not in self._loading:
                    self._loading.add(ck)
                    self.stats.misses += 1
                    break
                self._changed.wait()
        reserved = 0
        try:
            hint = size_hint() if callable(size_hint) else size_hint
            with self._lock:
                self.make_room(hint)
                reserved = max(0, hint)
                self._reserved += reserved
            model = load()
            size = model_size(model)
            with self._lock:
                self._reserved -= reserved
                reserved = 0
                record = self._admit(ck, model, size, pins=1)
                self.stats.loads += 1
                self._enforce_budget()
            return record, False
        finally:
            with self._changed:
                self._reserved -= reserved
                self._loading.discard(ck)
                self._changed.notify_all()

    def _admit(self, ck: str, model: Any, size: int, pins: int) -> CacheRecord:
        import torch

        old = self._records.pop(ck, None)
        if old is not None:
            self._drop(old)
        record = CacheRecord(key=ck, model=model, size=size, pins=pins,
                             device=_device_of(model, torch.device(self.storage_device)))
        self._records[ck] = record
        self.stats.high_water = max(self.stats.high_water, self.resident_bytes())
        return record

    # --- room ----------------------------------------------------------------------------------
    def make_room(self, size: int) -> None:
        """Evict unheld entries, least recently used first, until ``size`` more bytes fit."""
        with self._lock:
            self._evict_until(self.max_bytes - size)

    def _enforce_budget(self) -> None:
        self._evict_until(self.max_bytes)
        if self.resident_bytes() + self._reserved > self.max_bytes:
            self.stats.over_budget += 1
            self.logger.warning("model cache over budget: %.2f GB held in use, budget %.2f GB",
                                self.resident_bytes() / GB, self.max_cache_size)

    def _evict_until(self, target: int) -> None:
        """Evict unheld entries, oldest use first, until resident plus reserved bytes <= target."""
        for record in list(self._records.values()):
            if self.resident_bytes() + self._reserved <= max(target, 0):
                return
            if not record.held:
                self._evict(record)

    def _evict(self, record: CacheRecord) -> None:
        self._records.pop(record.key, None)
        self._drop(record)
        self.stats.evictions += 1
        self.logger.debug("evicted %s (%.1f MB)", record.key, record.size / 2**20)

    def _drop(self, record: CacheRecord) -> None:
        device = record.device
        record.model = None
        record.cpu_state_dict = None
        record.evicted = True
        if not same_device(device, self.storage_device):
            free_accelerator_memory(device)

    def clear(self) -> None:
        """Evict every entry that is not held."""
        with self._lock:
            for record in list(self._records.values()):
                if not record.held:
                    self._evict(record)

    # --- holding ---------------------------------------------------------------------------------
    def release(self, record: CacheRecord) -> None:
        """End the caller's pin on ``record`` (the entry may be evicted from now on)."""
        with self._lock:
            if record.pins > 0:
                record.pins -= 1
            self._enforce_budget_quietly()

    def lock(self, record: CacheRecord) -> Any:
        """Hold ``record`` on the execution device for a ``with`` block; returns the model."""
        with self._lock:
            if record.evicted or record.model is None:
                raise KeyError(f"{record.key} is no longer cached")
            record.locks += 1
            self._touch(record)
            try:
                if self._vram_is_separate and not same_device(record.device, self.execution_device):
                    self._make_vram_room(record.size, keep=record)
                    if record.cpu_state_dict is None:
                        record.cpu_state_dict = _cpu_state_dict(record.model)
                    record.model = move_model(record.model, self.execution_device)
                    record.device = self.execution_device
            except BaseException:
                record.locks -= 1
                raise
            return record.model

    def unlock(self, record: CacheRecord) -> None:
        """End one ``with`` block on ``record``; without lazy offloading it leaves VRAM at once."""
        with self._lock:
            record.locks = max(0, record.locks - 1)
            if not record.locked and not self.lazy_offloading:
                self._offload(record)
            self._enforce_budget_quietly()

    def _enforce_budget_quietly(self) -> None:
        self._evict_until(self.max_bytes)

    def _make_vram_room(self, size: int, keep: CacheRecord) -> None:
        for record in list(self._records.values()):
            if self.vram_bytes() + size <= self.max_vram_bytes:
                return
            if record is not keep and not record.locked and same_device(record.device, self.execution_device):
                self._offload(record)

    def _offload(self, record: CacheRecord) -> None:
        if record.model is None or same_device(record.device, self.storage_device):
            return
        record.model = move_model(record.model, self.storage_device)
        record.device = self.storage_device
        record.cpu_state_dict = None
        self.stats.offloads += 1
        free_accelerator_memory(self.execution_device)


def _device_of(model: Any, default: Any) -> Any:
    from reconciler.load.devices import model_device

    try:
        return model_device(model)
    except Exception:  # noqa: BLE001 - an exotic model: assume where it was loaded
        return default


def _cpu_state_dict(model: Any) -> Optional[dict[str, Any]]:
    """A CPU copy of a module's weights (None for models without a state dict)."""
    import torch

    if isinstance(model, torch.nn.Module):
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return None


__all__ = ["CacheRecord", "CacheStats", "ModelCache", "cache_key"]
