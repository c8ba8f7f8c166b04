"""ModelCache: accounting, LRU eviction, locks and pins, single-flight loads, VRAM offload.

Models here are plain torch modules and tensors (the loaders have their own tests); the
execution device is faked as CUDA with the moves recorded, so offload logic runs on CPU.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from reconciler.load import cache as cache_module
from reconciler.load.cache import ModelCache
from reconciler.load.devices import GB, model_size
from reconciler.load.loaded import LoadedModel

KB = 1024


def tensor_of(nbytes: int) -> Any:
    import torch

    return torch.zeros(nbytes // 4, dtype=torch.float32)


def mb_cache(megabytes: float, **kwargs: Any) -> ModelCache:
    return ModelCache(max_cache_size=megabytes * 2**20 / GB, execution_device="cpu", **kwargs)


def test_size_is_the_bytes_of_parameters_and_buffers() -> None:
    import torch

    module = torch.nn.Linear(10, 20)  # 200 weights + 20 biases, float32
    module.register_buffer("running", torch.zeros(5, dtype=torch.float16))
    assert model_size(module) == (200 + 20) * 4 + 5 * 2
    assert model_size({"a": tensor_of(400), "b": {"c": tensor_of(800)}}) == 1200
    assert model_size(object()) == 0  # a tokenizer or scheduler
    shared = torch.nn.Linear(4, 4)
    assert model_size(torch.nn.Sequential(shared, shared)) == model_size(shared), "shared weights count once"


def test_resident_bytes_and_lru_eviction_order() -> None:
    cache = mb_cache(1.0)
    for key in "abc":
        cache.put(key, tensor_of(300 * KB))
    assert cache.resident_bytes() == 900 * KB
    cache.get("a")  # a is now the most recently used
    cache.put("d", tensor_of(300 * KB))
    assert cache.keys() == ["c", "a", "d"], "the least recently used (b) went first"
    cache.put("e", tensor_of(600 * KB))
    assert cache.keys() == ["d", "e"] and cache.resident_bytes() <= 2**20
    assert cache.stats.evictions == 3 and cache.stats.high_water <= 2**20


def test_room_is_made_from_the_files_size_before_loading() -> None:
    cache = mb_cache(1.0)
    cache.put("old", tensor_of(700 * KB))
    seen_before_load: list[list[str]] = []

    def load() -> Any:
        seen_before_load.append(cache.keys())
        return tensor_of(500 * KB)

    cache.get_or_load("new", None, load, size_hint=500 * KB)
    assert seen_before_load == [[]], "the old entry was evicted before the new one was read"
    assert cache.stats.high_water <= 2**20


def test_locked_and_pinned_models_are_never_evicted() -> None:
    cache = mb_cache(1.0)
    locked = cache.put("locked", tensor_of(600 * KB))
    cache.lock(locked)
    pinned, hit = cache.get_or_load("pinned", None, lambda: tensor_of(600 * KB), 600 * KB)
    assert not hit and pinned.pins == 1
    cache.put("third", tensor_of(100 * KB))
    assert set(cache.keys()) >= {"locked", "pinned"}
    assert cache.stats.over_budget >= 1, "held models over budget are reported, not dropped"
    cache.unlock(locked)
    cache.release(pinned)
    cache.put("fourth", tensor_of(600 * KB))
    assert "locked" not in cache.keys() and "pinned" not in cache.keys()
    assert cache.resident_bytes() <= 2**20


def test_a_loaded_model_is_not_evicted_before_it_is_entered() -> None:
    """InvokeAI #7513: load A, then another load needs room, then ``with A``: A must still
    be the object that was loaded (not evicted and silently reloaded or lost)."""
    cache = mb_cache(1.0)
    loads: list[str] = []

    def loader(name: str, nbytes: int):
        def load() -> Any:
            loads.append(name)
            return tensor_of(nbytes)
        return load

    record, _ = cache.get_or_load("a", None, loader("a", 600 * KB), 600 * KB)
    handle = LoadedModel(None, cache=cache, record=record,
                         reload=lambda: cache.get_or_load("a", None, loader("a", 600 * KB), 600 * KB))
    first = handle.model
    other, _ = cache.get_or_load("b", None, loader("b", 600 * KB), 600 * KB)  # wants a's room
    cache.release(other)
    assert "a" in cache.keys()
    with handle as model:
        assert model is first and loads == ["a", "b"]
    # after the first with block the pin is gone: a is an ordinary LRU entry again
    cache.put("c", tensor_of(600 * KB))
    assert "a" not in cache.keys()
    with handle as model:  # evicted meanwhile: entering loads it again
        assert model is not first and loads == ["a", "b", "a"]


def test_dropping_a_loaded_model_releases_its_pin() -> None:
    cache = mb_cache(1.0)
    record, _ = cache.get_or_load("a", None, lambda: tensor_of(600 * KB), 600 * KB)
    handle = LoadedModel(None, cache=cache, record=record)
    assert record.pins == 1
    del handle
    assert record.pins == 0


def test_concurrent_requests_for_one_model_load_it_once() -> None:
    cache = mb_cache(10.0)
    calls = 0
    lock = threading.Lock()
    start = threading.Barrier(8)
    results: list[Any] = []

    def load() -> Any:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.1)
        return tensor_of(100 * KB)

    def worker() -> None:
        start.wait()
        record, _hit = cache.get_or_load("m", None, load, 100 * KB)
        results.append(record)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1 and len({id(r) for r in results}) == 1
    assert results[0].pins == 8 and cache.stats.hits == 7 and cache.stats.misses == 1


def test_a_failed_load_lets_the_next_caller_try_again() -> None:
    cache = mb_cache(10.0)

    def broken() -> Any:
        raise RuntimeError("bad file")

    with pytest.raises(RuntimeError):
        cache.get_or_load("m", None, broken, 10)
    record, hit = cache.get_or_load("m", None, lambda: tensor_of(4 * KB), 10)
    assert not hit and record.size == 4 * KB


def test_threads_hammering_the_cache_keep_its_budget() -> None:
    import random

    cache = mb_cache(1.0)
    errors: list[BaseException] = []
    peak = 0

    def worker(seed: int) -> None:
        nonlocal peak
        rng = random.Random(seed)
        try:
            for _ in range(60):
                key = f"m{rng.randrange(8)}"
                record, _ = cache.get_or_load(key, None, lambda: tensor_of(200 * KB), 200 * KB)
                handle = LoadedModel(None, cache=cache, record=record)
                with handle as model:
                    assert model.numel() * 4 == 200 * KB
                    peak = max(peak, cache.resident_bytes())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    # four threads each hold at most one 200 KB model at a time: the budget is never needed past 1 MB
    assert cache.resident_bytes() <= 2**20 and cache.stats.high_water <= 2**20


class FakeCuda:
    """Records moves instead of doing them; devices are compared by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moves: list[tuple[int, str]] = []
        monkeypatch.setattr(cache_module, "move_model", self.move)
        monkeypatch.setattr(cache_module, "free_accelerator_memory", lambda device: None)

    def move(self, model: Any, device: Any) -> Any:
        self.moves.append((id(model), str(device)))
        return model


def test_vram_offloads_unlocked_models_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch)
    cache = ModelCache(max_cache_size=10 * 2**20 / GB, max_vram_cache_size=1 * 2**20 / GB,
                       execution_device="cuda", storage_device="cpu")
    a = cache.put("a", tensor_of(400 * KB))
    b = cache.put("b", tensor_of(400 * KB))
    c = cache.put("c", tensor_of(400 * KB))
    for record in (a, b):
        cache.lock(record)
        cache.unlock(record)  # lazy offloading: stays in VRAM until room is needed
    assert str(a.device) == str(b.device) == "cuda" and cache.vram_bytes() == 800 * KB
    cache.lock(c)  # 1.2 MB would not fit: a (least recently used) goes back to the CPU
    assert str(a.device) == "cpu" and str(b.device) == "cuda" and str(c.device) == "cuda"
    assert cache.stats.offloads == 1 and cache.vram_bytes() == 800 * KB
    assert fake.moves[-2:] == [(id(a.model), "cpu"), (id(c.model), "cuda")], "a leaves before c arrives"
    cache.unlock(c)


def test_a_locked_model_is_never_offloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCuda(monkeypatch)
    cache = ModelCache(max_cache_size=10 * 2**20 / GB, max_vram_cache_size=1 * 2**20 / GB,
                       execution_device="cuda", storage_device="cpu")
    a = cache.put("a", tensor_of(600 * KB))
    b = cache.put("b", tensor_of(600 * KB))
    cache.lock(a)
    cache.lock(b)  # no room, but a is locked: it stays; VRAM goes over rather than break a
    assert str(a.device) == "cuda" and str(b.device) == "cuda" and cache.stats.offloads == 0
    cache.unlock(a)
    cache.unlock(b)


def test_without_lazy_offloading_a_model_leaves_vram_at_unlock(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCuda(monkeypatch)
    cache = ModelCache(max_cache_size=0.01, max_vram_cache_size=0.01, execution_device="cuda",
                       storage_device="cpu", lazy_offloading=False)
    a = cache.put("a", tensor_of(4 * KB))
    cache.lock(a)
    cache.unlock(a)
    assert [device for _id, device in fake.moves] == ["cuda", "cpu"] and str(a.device) == "cpu"


def test_model_on_device_gives_a_cpu_state_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    FakeCuda(monkeypatch)
    cache = ModelCache(max_cache_size=0.01, max_vram_cache_size=0.01, execution_device="cuda",
                       storage_device="cpu")
    module = torch.nn.Linear(3, 3)
    record = cache.put("lin", module)
    handle = LoadedModel(None, cache=cache, record=record)
    with handle.model_on_device() as (state_dict, model):
        assert model is module and set(state_dict) == {"weight", "bias"}
        assert all(t.device.type == "cpu" for t in state_dict.values())
        assert state_dict["weight"].data_ptr() != module.weight.data_ptr(), "a copy, kept while in VRAM"
    plain = LoadedModel(None, {"lora": tensor_of(8)})
    with plain.model_on_device() as (state_dict, model):
        assert state_dict is None and set(model) == {"lora"}
