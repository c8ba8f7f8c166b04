"""One `apply` of several models while the servers misbehave: each model either installs
with exactly the right bytes or fails alone with a clear message, and nothing corrupt is
ever registered.  A server whose copy of a file is short gives up after the retry policy's
bounded tries; a full disk fails cleanly, naming the space needed."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.download import RetryPolicy
from reconciler.download.writer import PartWriter
from reconciler.store.base import ModelRecordServiceBase
from reconciler.testing.models import write_lora_kohya
from tests.download.server import Route
from tests.integrity.helpers import (
    assert_record_matches_disk,
    manifest,
    model_files,
    record_names,
    tamper,
)


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> dict[str, bytes]:
    """Distinct real LoRAs (about 100 KB each), one per model of the fault matrix."""
    root = tmp_path_factory.mktemp("loras")
    out = {}
    for i, name in enumerate(["reset", "fivexx", "ratelimited", "truncated", "drip", "norange", "wrong",
                              "down", "good"]):
        data = write_lora_kohya(root / f"{name}.safetensors", base="sd-1", rank=8 + i).read_bytes()
        out[name] = data
    return out


def short_copy(route: Route, at: int) -> None:
    """The server's copy of the file stops at byte ``at``: every response (Range requests
    too) announces the full length and closes the connection at that offset."""
    assert route.data is not None
    full = route.data
    route.read = lambda offset, n: full[offset:min(offset + n, at)]  # type: ignore[method-assign]


def installed_bytes(ws, name: str) -> bytes:
    (rec,) = [r for r in ws.records() if r.name == name]
    return (ws.models_dir / rec.path).read_bytes()


def test_every_fault_at_once_each_model_succeeds_or_fails_alone(remote_ws, loras, monkeypatch):
    ws = remote_ws
    monkeypatch.setenv("RECONCILER_DOWNLOAD_RETRIES", "3")
    hub = ws.hub
    entries = []
    for name in ("reset", "truncated", "drip", "norange", "wrong", "good"):  # Hugging Face (LFS, listed sha256)
        hub.add_repo(f"tiny/{name}", {f"{name}.safetensors": loras[name]})
        entries.append(f"{{name: {name}, source: 'tiny/{name}::{name}.safetensors'}}")
    hub.add_civitai_version(5001, 501, [{"name": "fivexx.safetensors", "bytes": loras["fivexx"], "primary": True}])
    entries.append("{name: fivexx, source: 'civitai:5001'}")
    for name in ("ratelimited", "down"):  # plain URLs, the first with a manifest sha256
        hub.server.add_file(f"/files/{name}.safetensors", data=loras[name], etag=f'"{name}"')
    sha = hashlib.sha256(loras["ratelimited"]).hexdigest()
    entries.append(f"{{name: ratelimited, source: '{hub.url('/files/ratelimited.safetensors')}', sha256: '{sha}'}}")
    entries.append(f"{{name: down, source: '{hub.url('/files/down.safetensors')}'}}")
    manifest(ws, *entries)
    # lock first (as CI would): the faults then hit the downloads, not the planning
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0

    size = len(loras["reset"])
    r = hub.file_route("tiny/reset", "reset.safetensors")
    r.reset_after, r.reset_times = size // 3, 2                       # RST twice mid-body
    r = hub.file_route("tiny/truncated", "truncated.safetensors")
    r.truncate_at, r.truncate_times = len(loras["truncated"]) // 2, 2  # close early, twice
    hub.file_route("tiny/drip", "drip.safetensors").drip = (32 * 1024, 0.01)  # slow trickle
    r = hub.file_route("tiny/norange", "norange.safetensors")
    r.ranges = False                                                  # ignores Range...
    r.reset_after, r.reset_times = len(loras["norange"]) // 2, 1      # ...and resets: restart at 0
    tamper(hub.file_route("tiny/wrong", "wrong.safetensors"))         # one byte flipped
    hub.civitai_file_route(5001).fail_statuses = [500, 503]           # CDN 5xx, then fine
    r = hub.server.routes["/files/ratelimited.safetensors"]
    r.fail_statuses, r.retry_after = [429], "1"                       # 429 with Retry-After: 1
    hub.server.routes["/files/down.safetensors"].fail_statuses = [503] * 50  # never recovers

    seen: list[tuple[float, str, str]] = []  # (when, method, path) of every request from now on
    log = hub.server.requests
    log.append = lambda r, _orig=log.append: (seen.append((time.monotonic(), r.method, r.path)), _orig(r))

    t0 = time.monotonic()
    result = ws.apply()
    elapsed = time.monotonic() - t0
    assert result.exit_code == 1, result.output
    good = {"reset", "truncated", "drip", "norange", "fivexx", "ratelimited", "good"}
    assert record_names(ws) == good
    for name in good:
        assert installed_bytes(ws, name) == loras[name], name
        assert_record_matches_disk(ws, name)
    # the two that failed: alone, each with its reason, nothing of them on disk
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert any("wrong" in ln and "sha256 mismatch" in ln for ln in lines), result.output
    assert any("down" in ln and "HTTP 503" in ln for ln in lines), result.output
    assert not [p for p in model_files(ws) if "wrong" in p or "down" in p]
    # every fault was served (and ridden out)
    assert hub.file_route("tiny/reset", "reset.safetensors").reset_times == 0
    assert hub.file_route("tiny/truncated", "truncated.safetensors").truncate_times == 0
    assert hub.file_route("tiny/norange", "norange.safetensors").reset_times == 0
    assert hub.civitai_file_route(5001).fail_statuses == []
    assert hub.server.routes["/files/ratelimited.safetensors"].fail_statuses == []
    # the 429's Retry-After (1 s) was honoured, and the whole run stayed bounded
    limited = [when for when, method, path in seen if method == "GET" and path == "/files/ratelimited.safetensors"]
    assert len(limited) >= 2 and limited[1] - limited[0] >= 0.95, limited
    assert elapsed < 20, elapsed
    # resumed, not restarted, where the server honours Range
    head = hub.head("tiny/reset")
    assert hub.server.bytes_sent_for(f"/tiny/reset/resolve/{head}/reset.safetensors") < 1.6 * size
    # and the next plan wants only the two that failed
    plan = ws.plan_json()
    assert sorted(a["name"] for a in plan["actions"] if a["action"] != "noop") == ["down", "wrong"]


def test_a_short_copy_fails_after_bounded_retries(remote_ws, loras, monkeypatch):
    """The server has only the first half of the file: the first response brings that much,
    every later one (Range from the missing byte) brings nothing.  The model fails after
    ``download_retries`` retries, within the retry policy's summed backoff."""
    ws = remote_ws
    retries = 2
    monkeypatch.setenv("RECONCILER_DOWNLOAD_RETRIES", str(retries))
    data = loras["good"]
    ws.hub.add_repo("tiny/short", {"short.safetensors": data})
    short_copy(ws.hub.file_route("tiny/short", "short.safetensors"), len(data) // 2)
    manifest(ws, "{name: short, source: 'tiny/short::short.safetensors'}")
    t0 = time.monotonic()
    result = ws.apply()
    elapsed = time.monotonic() - t0
    assert result.exit_code == 1
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert "short" in line and f"connection closed at byte {len(data) // 2}" in line, line
    assert f"gave up after {retries} retries" in line, line
    assert record_names(ws) == set() and model_files(ws) == []
    head = ws.hub.head("tiny/short")
    gets = ws.hub.server.count(f"/tiny/short/resolve/{head}/short.safetensors", "GET")
    assert gets == 1 + retries, gets  # the first (half the bytes), then each retry brings nothing
    policy = RetryPolicy(attempts=retries)
    assert elapsed < policy.max_total_wait() + 3.0, elapsed
    assert elapsed >= policy.min_total_wait(), elapsed


@pytest.mark.slow
def test_a_short_copy_with_the_default_retry_policy(remote_ws, loras):
    """The README's figure: with the default settings (5 retries) a short copy fails
    within the policy's bound (7.75-15.5 s of backoff)."""
    ws = remote_ws
    data = loras["good"]
    ws.hub.add_repo("tiny/short", {"short.safetensors": data})
    short_copy(ws.hub.file_route("tiny/short", "short.safetensors"), len(data) // 2)
    manifest(ws, "{name: short, source: 'tiny/short::short.safetensors'}")
    t0 = time.monotonic()
    result = ws.apply()
    elapsed = time.monotonic() - t0
    print(f"short copy, default policy: failed after {elapsed:.2f} s")
    assert result.exit_code == 1 and "gave up after 5 retries" in result.output
    policy = RetryPolicy()
    assert policy.min_total_wait() <= elapsed < policy.max_total_wait() + 3.0


def _inject_enospc(monkeypatch, name: str, after: int) -> None:
    """Writes into ``<name>.part`` fail with ENOSPC once ``after`` bytes were written."""
    real = PartWriter.write_many
    written: dict[str, int] = {}

    def write_many(self, views, offset):
        if self.path.name == name + ".part":
            n = sum(len(v) for v in views)
            if written.get(name, 0) + n > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written[name] = written.get(name, 0) + n
        return real(self, views, offset)

    monkeypatch.setattr(PartWriter, "write_many", write_many)


def test_disk_full_mid_download_fails_cleanly_and_names_the_space(remote_ws, loras, monkeypatch):
    ws = remote_ws
    ws.hub.add_repo("tiny/full", {"full.safetensors": loras["drip"]})
    ws.hub.add_repo("tiny/good", {"good.safetensors": loras["good"]})
    manifest(ws, "{name: full, source: 'tiny/full::full.safetensors'}",
             "{name: good, source: 'tiny/good::good.safetensors'}")
    _inject_enospc(monkeypatch, "full.safetensors", after=64 * 1024)
    result = ws.apply()
    assert result.exit_code == 1
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    size = len(loras["drip"])
    assert "full" in line and "no space left on device" in line, line
    assert f"needs {size:,} bytes" in line, line
    assert record_names(ws) == {"good"}, "the other model still installs"
    assert model_files(ws) == ["sd-1/lora/good.safetensors"], "nothing of the failed model where models go"
    leftovers = [p for p in (ws.models_dir / ".reconciler" / "tmp").rglob("*") if p.is_file()]
    assert leftovers == [], f"the partial download is removed (it holds space the user needs): {leftovers}"


def _mount_tmpfs(path: Path, size: int) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    return done.returncode == 0


def test_a_really_full_tmpfs(remote_ws, loras, tmp_path):
    """The same on a real, small filesystem (a tmpfs; needs root, skipped otherwise): a disk
    already too full is refused before anything changes; a disk that fills while the
    download runs (another writer takes the space) fails that model cleanly."""
    ws = remote_ws
    mnt = ws.models_dir
    if not _mount_tmpfs(mnt, 4 * 2**20):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        data = loras["drip"]
        ws.hub.add_repo("tiny/full", {"full.safetensors": data})
        route = ws.hub.file_route("tiny/full", "full.safetensors")
        route.drip = (16 * 1024, 0.02)
        manifest(ws, "{name: full, source: 'tiny/full::full.safetensors'}")
        path = f"/tiny/full/resolve/{ws.hub.head('tiny/full')}/full.safetensors"
        filler = mnt / "filler.bin"
        # first, a disk already too full: refused up front, naming the bytes, nothing changes
        db = ws.root / "records.db"  # the store lives elsewhere: SQLite needs room of its own to open
        (mnt / ".reconciler").mkdir(parents=True, exist_ok=True)
        with open(filler, "wb") as f:
            f.truncate(0)
            f.write(b"\0" * (shutil.disk_usage(mnt).free - 16 * 1024))
        result = ws.cli("--db", str(db), "apply", "-y", str(ws.manifests))
        assert result.exit_code == 1
        assert f"writes {len(data)} bytes" in result.output and "free" in result.output, result.output
        assert model_files(ws) == ["filler.bin"], "refused before anything changed"
        assert [p for p in (mnt / ".reconciler").rglob("*") if p.is_file() and "lock" not in p.name] == []
        filler.unlink()

        def fill() -> None:  # once the download has begun, take every free byte
            deadline = time.monotonic() + 10
            while ws.hub.server.bytes_sent_for(path) == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            with open(filler, "wb", buffering=0) as f:
                try:
                    while f.write(b"\0" * 65536):
                        pass
                except OSError:  # ENOSPC: the disk is full
                    pass

        t = threading.Thread(target=fill, daemon=True)
        t.start()
        result = ws.cli("--db", str(db), "apply", "-y", str(ws.manifests))
        t.join(10)
        assert result.exit_code == 1, result.output
        (line,) = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
        assert "no space left on device" in line and f"needs {len(data):,} bytes" in line, line
        filler.unlink()
        store = ModelRecordServiceBase.from_db_file(db)
        assert store.all_models() == []
        store.close()
        assert model_files(ws) == []
        assert [p for p in (mnt / ".reconciler" / "tmp").rglob("*") if p.is_file()] == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
