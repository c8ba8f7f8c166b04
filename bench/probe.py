"""Benchmark: probe 1,000 synthetic models of mixed kinds; files/second against baselines.

Models come from reconciler.testing.models; each single-file model is then padded with a
sparse tensor so that it is 4 MiB on paper (the bytes are a hole: no disk space), the way
a real checkpoint's header is a tiny part of a large file.  The prober reads only headers
and configs, so its rate should not depend on the padding; the baselines read everything.

Baselines, on the same files in the same run:
  * safe_open: ``safetensors.safe_open`` and list every tensor's shape (the library way);
  * sha256: read each model's full bytes and sha256 them (what verifying costs).

Usage: .venv/bin/python bench/probe.py [--count 1000] [--pad-mib 4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from safetensors import safe_open

from reconciler.probe import fast_hash, model_files, probe_model
from reconciler.testing import models as m

SINGLE_FILE_KINDS: list[tuple[str, Callable[[Path], Path]]] = [
    ("main sd-1", lambda p: m.write_main_checkpoint(p, base="sd-1")),
    ("main sd-2 inpaint", lambda p: m.write_main_checkpoint(p, base="sd-2", variant="inpaint")),
    ("main sdxl", lambda p: m.write_main_checkpoint(p, base="sdxl")),
    ("vae", lambda p: m.write_vae_checkpoint(p)),
    ("lora kohya sdxl", lambda p: m.write_lora_kohya(p, base="sdxl")),
    ("lora lycoris", lambda p: m.write_lora_lycoris(p, base="sd-1", algo="lokr")),
    ("lora peft", lambda p: m.write_lora_diffusers(p, base="sd-2")),
    ("embedding", lambda p: m.write_textual_inversion(p, base="sdxl")),
    ("controlnet", lambda p: m.write_controlnet_checkpoint(p, base="sd-1")),
    ("ip_adapter", lambda p: m.write_ip_adapter_checkpoint(p, base="sd-1")),
]
FOLDER_KINDS: list[tuple[str, Callable[[Path], Path]]] = [
    ("pipeline sdxl", lambda p: m.write_diffusers_pipeline(p, base="sdxl")),
    ("vae folder", lambda p: m.write_vae_diffusers(p)),
    ("lora folder", lambda p: m.write_lora_diffusers_folder(p)),
    ("t2i_adapter", lambda p: m.write_t2i_adapter(p)),
]


def pad(path: Path, total: int) -> None:
    """Append a U8 tensor ``__pad__`` so the file is ``total`` bytes; its bytes stay a sparse hole."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    extra = max(total - len(data) - 128, 0)
    header["__pad__"] = {"dtype": "U8", "shape": [extra], "data_offsets": [len(body), len(body) + extra]}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + body)
        fh.truncate(8 + len(raw) + len(body) + extra)


def make_models(root: Path, count: int, pad_bytes: int) -> list[Path]:
    paths = []
    for i in range(count):
        if i % 25 == 24:  # 4 % folders
            name, build = FOLDER_KINDS[(i // 25) % len(FOLDER_KINDS)]
            paths.append(build(root / f"{i:04d}-{name.replace(' ', '-')}"))
        else:
            name, build = SINGLE_FILE_KINDS[i % len(SINGLE_FILE_KINDS)]
            p = build(root / f"{i:04d}-{name.replace(' ', '-')}.safetensors")
            pad(p, pad_bytes)
            paths.append(p)
    return paths


def rate(label: str, paths: list[Path], fn: Callable[[Path], object]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    dt = time.perf_counter() - t0
    per_s = len(paths) / dt
    print(f"  {label:<34} {len(paths):>5} models  {dt * 1000:8.1f} ms  {per_s:10,.0f} models/s")
    return per_s


def safe_open_shapes(path: Path) -> None:
    for f in model_files(path):
        if f.suffix == ".safetensors":
            with safe_open(str(f), framework="numpy") as st:
                for k in st.keys():
                    st.get_slice(k).get_shape()


def sha256_all(path: Path) -> None:
    for f in model_files(path):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(4 * 1024 * 1024):
                h.update(chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--pad-mib", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        t0 = time.perf_counter()
        paths = make_models(Path(tmp), args.count, int(args.pad_mib * 1024 * 1024))
        logical = sum(f.stat().st_size for p in paths for f in model_files(p))
        print(f"made {len(paths)} models ({logical / 1024**3:.1f} GiB on paper) in {time.perf_counter() - t0:.1f} s")
        kinds = Counter(f"{r.type.value}.{r.format.value}" for r in map(probe_model, paths))  # warm-up + check
        print("  kinds:", ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
        probe = rate("probe_model", paths, probe_model)
        rate("probe_model + fast_hash", paths, lambda p: (probe_model(p), fast_hash(p)))
        base1 = rate("baseline: safe_open shape listing", paths, safe_open_shapes)
        base2 = rate("baseline: full read + sha256", paths, sha256_all)
        print(f"probe_model: {probe:,.0f} models/s (target >= 500); "
              f"{probe / base1:.1f}x safe_open listing, {probe / base2:.1f}x full read + sha256")


if __name__ == "__main__":
    main()
