"""DownloadCache: LRU order, size bound, atomic puts, two processes sharing one cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.install.cache import DownloadCache, source_digest


def blob(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "models" / ".cache" / "downloads"


def test_put_get_returns_the_bytes_under_their_own_name(tmp_path, root) -> None:
    cache = DownloadCache(root, max_bytes=10_000)
    src = blob(tmp_path / "in", "lora.safetensors", 100)
    path = cache.put("https://example.test/lora.safetensors", src)
    assert path.name == "lora.safetensors" and path.read_bytes() == src.read_bytes()
    assert path.parent.name == source_digest("https://example.test/lora.safetensors")
    assert src.exists()  # copied, not moved
    assert cache.get("https://example.test/lora.safetensors") == path
    assert cache.get("https://example.test/other") is None
    index = json.loads((root / "index.json").read_text())
    [entry] = index["entries"].values()
    assert entry["source"] == "https://example.test/lora.safetensors" and entry["size"] == 100


def test_put_moves_a_folder_and_replaces_an_older_entry(tmp_path, root) -> None:
    cache = DownloadCache(root, max_bytes=10_000)
    folder = tmp_path / "in" / "pipe"
    blob(folder / "unet", "w.safetensors", 50)
    blob(folder, "model_index.json", 10)
    path = cache.put("repo/pipe", folder, move=True)
    assert not folder.exists() and (path / "unet" / "w.safetensors").stat().st_size == 50
    newer = blob(tmp_path / "in2", "pipe", 7)
    path2 = cache.put("repo/pipe", newer)
    assert path2.read_bytes() == newer.read_bytes() and cache.total_bytes == 7
    assert [e["source"] for e in cache.entries()] == ["repo/pipe"]
    assert not list(root.glob(".trash-*")) and not list(root.glob(".tmp-*"))


def test_lru_order_decides_what_is_evicted(tmp_path, root) -> None:
    cache = DownloadCache(root, max_bytes=300)
    for name in ("a", "b", "c"):
        cache.put(name, blob(tmp_path / "in", name, 100))
    assert cache.get("a") is not None  # a is now the most recent; b the least
    cache.put("d", blob(tmp_path / "in", "d", 100))
    assert cache.get("b") is None  # re-get after eviction
    assert {e["source"] for e in cache.entries()} == {"a", "c", "d"}
    assert not (root / source_digest("b")).exists()
    cache.put("e", blob(tmp_path / "in", "e", 150))  # needs two evictions: c then a
    assert [e["source"] for e in cache.entries()] == ["d", "e"]
    assert cache.total_bytes <= 300


def test_size_bound_keeps_the_entry_just_put_even_when_alone_too_big(tmp_path, root) -> None:
    cache = DownloadCache(root, max_bytes=250)
    cache.put("small", blob(tmp_path / "in", "small", 100))
    big = cache.put("big", blob(tmp_path / "in", "big", 400))
    assert big.exists() and cache.get("small") is None
    assert [e["source"] for e in cache.entries()] == ["big"]
    cache.max_bytes = 1000
    cache.put("next", blob(tmp_path / "in", "next", 10))
    assert {e["source"] for e in cache.entries()} == {"big", "next"}
    cache.max_bytes = 0
    assert cache.evict(keep="next") == ["big"]
    assert [e["source"] for e in cache.entries()] == ["next"]


def test_a_failed_put_leaves_no_entry_and_no_staging(tmp_path, root, monkeypatch) -> None:
    cache = DownloadCache(root, max_bytes=10_000)
    cache.put("old", blob(tmp_path / "in", "old", 10))

    def broken_copy(src, dst, *a, **k):
        Path(dst).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconciler.install.cache.shutil.copy2", broken_copy)
    with pytest.raises(OSError, match="No space left on device"):
        cache.put("new", blob(tmp_path / "in", "new", 10))
    assert cache.get("new") is None
    assert cache.get("old") is not None
    assert sorted(p.name for p in root.iterdir()) == sorted([".lock", "index.json", source_digest("old")])


def test_a_failed_move_gives_the_file_back(tmp_path, root, monkeypatch) -> None:
    cache = DownloadCache(root, max_bytes=10_000)
    src = blob(tmp_path / "in", "f.bin", 10)
    monkeypatch.setattr(DownloadCache, "_write_index", lambda self, data: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError, match="disk"):
        cache.put("f", src, move=True)
    assert src.exists()
    monkeypatch.undo()
    assert cache.get("f") is None


_CRASH = """
import os, sys
from pathlib import Path
from reconciler.install.cache import DownloadCache
def die(self, data):
    os._exit(3)   # the process dies after the rename, before the index names the entry
DownloadCache._write_index = die
DownloadCache(Path(sys.argv[1]), 10_000).put("crash", Path(sys.argv[2]))
"""


def test_a_crash_mid_put_leaves_no_entry_and_sweep_clears_the_orphan(tmp_path, root) -> None:
    cache = DownloadCache(root, max_bytes=10_000)
    cache.put("kept", blob(tmp_path / "in", "kept", 10))
    src = blob(tmp_path / "in", "crash.bin", 10)
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(root), str(src)], capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()
    assert (root / source_digest("crash")).exists()  # the orphan folder is there ...
    assert cache.get("crash") is None and "crash" not in cache  # ... but it is no entry
    removed = cache.sweep()
    assert [p.name for p in removed] == [source_digest("crash")]
    assert cache.get("kept") is not None


def test_sweep_spares_young_staging_folders(root) -> None:
    cache = DownloadCache(root, max_bytes=10)
    (root / ".tmp-inflight").mkdir()
    assert cache.sweep() == []
    assert [p.name for p in cache.sweep(max_tmp_age=-1)] == [".tmp-inflight"]


_WORKER = """
import os, sys
from pathlib import Path
from reconciler.install.cache import DownloadCache
root, tag, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cache = DownloadCache(root, 2_000)
work.mkdir(parents=True, exist_ok=True)
for i in range(25):
    f = work / f"{tag}-{i}.bin"
    f.write_bytes(os.urandom(100))
    p = cache.put(f"{tag}/{i}", f, move=True)
    got = cache.get(f"{tag}/{i}")
    # the other process may have evicted it meanwhile (its puts are newer); never a wrong path
    assert got in (p, None), (got, p)
"""


def test_two_processes_share_one_cache(tmp_path, root) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(_WORKER), str(root), tag, str(tmp_path / tag)],
                         stderr=subprocess.PIPE)
        for tag in ("p", "q")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    cache = DownloadCache(root, 2_000)
    entries = cache.entries()
    assert cache.total_bytes <= 2_000 and len(entries) == 20
    # every indexed entry is whole on disk, and nothing on disk is outside the index
    on_disk = {p.name for p in root.iterdir() if not p.name.startswith(".") and p.name != "index.json"}
    assert on_disk == {source_digest(e["source"]) for e in entries}
    for e in entries:
        assert (root / source_digest(e["source"]) / e["name"]).stat().st_size == 100
    assert len({e["last_used"] for e in entries}) == len(entries)
