"""ModelConvertCache: what names an entry, what counts as complete, how it is trimmed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from reconciler.configs import validate_config
from reconciler.load import ModelConvertCache
from reconciler.load.devices import GB


def checkpoint_config(**extra: object):
    return validate_config({"key": "k1", "name": "sd", "type": "main", "format": "checkpoint", "base": "sd-2",
                            "path": "sd.safetensors", **extra})


def test_the_entry_changes_with_the_source_and_the_conversion_fields(tmp_path: Path) -> None:
    source = tmp_path / "sd.safetensors"
    source.write_bytes(b"x" * 10)
    cache = ModelConvertCache(tmp_path / "convert", max_size=1.0)
    first = cache.path_for(checkpoint_config(), source)
    assert cache.path_for(checkpoint_config(), source) == first and first.name.startswith("k1-")
    assert cache.path_for(checkpoint_config(prediction_type="v_prediction"), source) != first
    assert cache.path_for(checkpoint_config(upcast_attention=True), source) != first
    assert cache.path_for(checkpoint_config(description="only a label"), source) == first
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert cache.path_for(checkpoint_config(), source) != first


def test_only_a_complete_conversion_is_found(tmp_path: Path) -> None:
    source = tmp_path / "sd.safetensors"
    source.write_bytes(b"x")
    cache = ModelConvertCache(tmp_path / "convert")
    entry = cache.path_for(checkpoint_config(), source)
    entry.mkdir(parents=True)
    (entry / "unet").mkdir()
    assert cache.lookup(checkpoint_config(), source) is None, "a crash mid-conversion is not an entry"
    cache.mark_complete(entry)
    assert cache.lookup(checkpoint_config(), source) == entry


def test_make_room_trims_least_recently_used_first(tmp_path: Path) -> None:
    cache = ModelConvertCache(tmp_path / "convert", max_size=250_000 / GB)
    for age, name in enumerate(["old", "mid", "new"]):
        entry = cache.cache_path / name
        entry.mkdir(parents=True)
        (entry / "w.bin").write_bytes(b"0" * 100_000)
        os.utime(entry, (1_000_000 + age, 1_000_000 + age))
    cache.make_room(100_000)
    assert sorted(p.name for p in cache.cache_path.iterdir()) == ["new"]
    assert cache.total_bytes() == 100_000
