"""Remote install bench: `reconciler apply` of an 8 x 128 MiB repo on the local fake hub,
beside huggingface_hub's `snapshot_download` of the same repo and curl fetching the same files.

    .venv/bin/python bench/hub.py                 # ~1 min, ~4 GiB of temp disk
    .venv/bin/python bench/hub.py --repeat 3      # median of 3 runs of each
    .venv/bin/python bench/hub.py --files 8 --mib 128

One process: tests/hub/fakehub.py's FakeHub on 127.0.0.1 serves a diffusers-like repo
(model_index.json naming 8 components; in each folder a config.json and a 128 MiB
``diffusion_pytorch_model.safetensors`` with a valid header: one uint8 tensor of random
bytes).  The weights are written once to a temp dir and served from disk with sendfile;
the hub lists them as LFS files with their sha256, so apply verifies every byte.

Each client runs in a subprocess (startup included, as a user would see it):

* ``reconciler apply -y`` of a manifest declaring ``bench/big:default`` with ``HF_ENDPOINT``
  at the hub and ``--models-dir`` a fresh temp dir: resolve, download, sha256 of every
  file, probe, move into place, record.
* ``huggingface_hub.snapshot_download(repo, endpoint=..., cache_dir=<fresh>)`` (its default
  8 workers; progress bars off).
* ``curl`` fetching the 8 ``/resolve/<sha>/<path>`` URLs one after another (one process,
  one kept-alive connection, ``-o`` to files).

Printed: wall time and MB/s (10^6 bytes) of each over the repo's bytes, and the targets
of issue 5: apply / snapshot_download wall time <= 0.7, apply / curl throughput >= 0.8.
Exit status 1 when a target is missed.  Temp dirs are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hub.fakehub import FakeHub  # noqa: E402

MiB = 2**20
MB = 10**6
REPO = "bench/big"
COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "transformer", "controlnet",
              "image_encoder")
WEIGHTS = "diffusion_pytorch_model.safetensors"
TARGET_SNAPSHOT = 0.7
TARGET_CURL = 0.8


def safetensors_header(size: int) -> bytes:
    """The 8-byte length + JSON header of a ``size``-byte safetensors file holding one U8 tensor."""
    data_len = size
    for _ in range(4):  # the header's length depends on the digits of data_len: settle it
        raw = json.dumps({"weight": {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}},
                         separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        data_len = size - 8 - len(raw)
    out = struct.pack("<Q", len(raw)) + raw
    assert len(out) + data_len == size
    return out


def write_weights(path: Path, size: int, seed: int, block: bytes) -> None:
    """A valid safetensors file of exactly ``size`` bytes; the tensor is random bytes."""
    header = safetensors_header(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header)
        left = size - len(header)
        i = 0
        while left:
            n = min(left, len(block))
            f.write((seed.to_bytes(4, "little") + i.to_bytes(4, "little") + block[8:n]) if n >= 8 else block[:n])
            left -= n
            i += 1


def make_repo(root: Path, n_files: int, size: int) -> dict[str, bytes | Path]:
    """The repo's files: JSON as bytes, weights as paths under ``root``."""
    comps = COMPONENTS[:n_files] if n_files <= len(COMPONENTS) else \
        COMPONENTS + tuple(f"extra_{i}" for i in range(n_files - len(COMPONENTS)))
    files: dict[str, bytes | Path] = {}
    index: dict[str, object] = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1"}
    block = os.urandom(min(size, 32 * MiB))
    for i, comp in enumerate(comps):
        index[comp] = ["diffusers", "UNet2DConditionModel"]
        conf = {"_class_name": "UNet2DConditionModel", "cross_attention_dim": 768, "in_channels": 4,
                "component": comp}
        files[f"{comp}/config.json"] = json.dumps(conf, indent=2).encode()
        path = root / comp / WEIGHTS
        write_weights(path, size, i, block)
        files[f"{comp}/{WEIGHTS}"] = path
    files["scheduler/scheduler_config.json"] = json.dumps(
        {"_class_name": "DDIMScheduler", "prediction_type": "epsilon"}).encode()
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    files["model_index.json"] = json.dumps(index, indent=2).encode()
    return files


def child_env(hub: FakeHub, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER"):
        env.pop(k, None)
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost")
    return env


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of ``cmd``; dirty pages of earlier runs are flushed first, so no client
    pays for another's writeback."""
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dt


def tree_bytes(root: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in root.rglob(f"*{suffix}") if p.is_file() and not p.is_symlink())


def run_apply(hub: FakeHub, work: Path, expected: int) -> float:
    """``reconciler apply`` in a fresh workspace; returns wall seconds."""
    ws = Path(tempfile.mkdtemp(prefix="apply-", dir=work))
    try:
        (ws / "manifests").mkdir()
        (ws / "manifests" / "big.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: bench}\nspec:\n  models:\n"
            f"    - {{name: big, source: '{REPO}:default'}}\n")
        cli = ROOT / ".venv" / "bin" / "reconciler"
        cmd = [str(cli) if cli.exists() else sys.executable, *([] if cli.exists() else ["-m", "reconciler.cli"]),
               "--models-dir", str(ws / "models"), "apply", "-y", str(ws / "manifests")]
        dt = timed(cmd, child_env(hub, ws), ws)
        got = tree_bytes(ws / "models", ".safetensors")
        if got != expected:
            raise SystemExit(f"apply installed {got} bytes of weights, expected {expected}")
        return dt
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def run_snapshot(hub: FakeHub, work: Path, expected: int) -> float:
    """``snapshot_download`` in a subprocess into a fresh cache; returns wall seconds."""
    ws = Path(tempfile.mkdtemp(prefix="snapshot-", dir=work))
    try:
        code = ("import sys; from huggingface_hub import snapshot_download; "
                "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3])")
        dt = timed([sys.executable, "-c", code, REPO, hub.endpoint, str(ws / "cache")], child_env(hub, ws), ws)
        blobs = [p for p in (ws / "cache").rglob("blobs/*") if p.is_file() and p.stat().st_size > MiB]
        got = sum(p.stat().st_size for p in blobs)
        if got != expected:
            raise SystemExit(f"snapshot_download fetched {got} bytes of weights, expected {expected}")
        return dt
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def run_curl(hub: FakeHub, work: Path, paths: list[str], expected: int) -> tuple[float, float]:
    """One curl process fetching ``paths`` one after another; returns wall seconds, and wall
    seconds until its files are also fsynced (as durable as apply's are before their rename)."""
    ws = Path(tempfile.mkdtemp(prefix="curl-", dir=work))
    try:
        sha = hub.head(REPO)
        cmd = ["curl", "-sS", "--fail", "--noproxy", "*"]
        for i, path in enumerate(paths):
            cmd += ["-o", str(ws / f"{i}.bin"), hub.resolve_url(REPO, path, sha)]
        dt = timed(cmd, child_env(hub, ws), ws)
        t0 = time.perf_counter()
        for f in sorted(ws.glob("*.bin")):
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        durable = dt + time.perf_counter() - t0
        got = sum(p.stat().st_size for p in ws.glob("*.bin"))
        if got != expected:
            raise SystemExit(f"curl fetched {got} bytes, expected {expected}")
        return dt, durable
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8, help="weight files (components) [8]")
    ap.add_argument("--mib", type=int, default=128, help="MiB per weight file [128]")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each client; the median is reported [1]")
    ap.add_argument("--only", default="curl,snapshot,apply", help="comma list of curl,snapshot,apply")
    ap.add_argument("--tmp", default=None, help="parent of the temp dirs [system temp]")
    args = ap.parse_args()
    only = set(args.only.split(","))
    size = args.mib * MiB
    work = Path(tempfile.mkdtemp(prefix="bench-hub-", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        files = make_repo(work / "repo", args.files, size)
        with FakeHub() as hub:
            hub.add_repo(REPO, files)
            weights = sorted(p for p, v in files.items() if isinstance(v, Path))
            total = len(weights) * size
            all_bytes = sum(f.size for f in hub.repos[REPO].commits[hub.head(REPO)].files.values())
            print(f"repo {REPO}: {len(weights)} x {args.mib} MiB weights ({total / MB:.0f} MB; {len(files)} files, "
                  f"{all_bytes - total} bytes of JSON), on {hub.endpoint}; set up in {time.perf_counter() - t0:.1f} s")
            runs: dict[str, list[float]] = {"curl": [], "curl_fsync": [], "snapshot": [], "apply": []}
            for _ in range(args.repeat):
                if "curl" in only:
                    plain, durable = run_curl(hub, work, weights, total)
                    runs["curl"].append(plain)
                    runs["curl_fsync"].append(durable)
                if "snapshot" in only:
                    runs["snapshot"].append(run_snapshot(hub, work, total))
                if "apply" in only:
                    runs["apply"].append(run_apply(hub, work, total))
        wall = {k: statistics.median(v) for k, v in runs.items() if v}
        label = {"curl": "curl, sequential", "curl_fsync": "curl, then fsync", "snapshot": "snapshot_download",
                 "apply": "reconciler apply"}
        for k, dt in wall.items():
            each = ", ".join(f"{x:.2f}" for x in runs[k])
            print(f"  {label[k]:<20} {dt:6.2f} s  {total / dt / MB:7.0f} MB/s   (runs: {each} s)")
        ok = True
        if "apply" in wall and "snapshot" in wall:
            r = wall["apply"] / wall["snapshot"]
            ok &= r <= TARGET_SNAPSHOT
            print(f"  apply / snapshot_download wall time  {r:.2f}  (target <= {TARGET_SNAPSHOT}) "
                  f"{'ok' if r <= TARGET_SNAPSHOT else 'MISSED'}")
        if "apply" in wall and "curl" in wall:
            r = wall["curl"] / wall["apply"]  # throughput ratio = inverse wall-time ratio
            ok &= r >= TARGET_CURL
            print(f"  apply / curl throughput             {r:.2f}  (target >= {TARGET_CURL}) "
                  f"{'ok' if r >= TARGET_CURL else 'MISSED'}")
            rd = wall["curl_fsync"] / wall["apply"]
            print(f"  apply / (curl + fsync) throughput   {rd:.2f}  (apply fsyncs every file before its rename)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
