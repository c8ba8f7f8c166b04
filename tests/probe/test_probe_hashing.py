"""fast_hash / sha256_file / file_states."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from imohash import hashfile

from reconciler.probe import fast_hash, file_states, sha256_file
from reconciler.testing import models as m


def test_file_hash_is_imohash(tmp_path: Path) -> None:
    path = m.write_lora_kohya(tmp_path / "l.safetensors")
    assert fast_hash(path) == hashfile(str(path), hexdigest=True)
    assert len(fast_hash(path)) == 32


def test_folder_hash_is_stable_and_order_independent(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, order in ((a, ["x", "y/z", "w"]), (b, ["w", "y/z", "x"])):
        for name in order:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(name.encode() * 10)
    assert fast_hash(a) == fast_hash(b)
    (b / "w").write_bytes(b"changed!")
    assert fast_hash(a) != fast_hash(b)
    (b / "w").rename(b / "v")
    assert fast_hash(b) != fast_hash(a)


def test_hash_time_does_not_grow_with_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    with open(small, "wb") as fh:
        fh.truncate(10 * 1024**2)
    with open(big, "wb") as fh:
        fh.truncate(10 * 1024**3)  # sparse: takes no disk space
    t0 = time.perf_counter()
    fast_hash(small)
    t1 = time.perf_counter()
    fast_hash(big)
    t2 = time.perf_counter()
    assert t2 - t1 < 0.05 and t1 - t0 < 0.05
    assert fast_hash(small) != fast_hash(big)  # imohash includes the size


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "f"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()


def test_file_states_of_a_file_and_a_folder(tmp_path: Path) -> None:
    path = m.write_textual_inversion(tmp_path / "ti.safetensors")
    (state,) = file_states(path)
    assert state.path == "" and state.size == path.stat().st_size and state.sha256 is None
    assert state.mtime_ns == path.stat().st_mtime_ns and state.imohash == fast_hash(path)

    folder = m.write_vae_diffusers(tmp_path / "vae")
    states = file_states(folder)
    assert [s.path for s in states] == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert all(s.imohash == hashfile(str(folder / s.path), hexdigest=True) for s in states)


def test_symlink_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "a").write_text("a")
    (tmp_path / "secret").write_text("s")
    (folder / "link").symlink_to(tmp_path / "secret")
    (folder / "inside").symlink_to(folder / "a")
    assert [s.path for s in file_states(folder)] == ["a", "inside"]
