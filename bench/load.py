"""The loader's figures (issue 11), each beside its baseline from the same run.

* ``unet``: cold ``load_model`` of a ~300 MB diffusers UNet (the ``unet`` submodel of a
  registered pipeline) vs ``UNet2DConditionModel.from_pretrained`` of the same folder.  Both
  sides are whole processes started and waited for here (imports included), alternating,
  median of ``--rounds``.  Target: ratio <= 1.05.
* ``single``: a single-file sd-1 checkpoint (~300 MB UNet inside): ``load_model`` the first
  time (conversion into the convert cache) and again in a new process (from the convert
  cache) vs ``from_single_file`` with a local config folder, each time, in new processes.
* ``hit``: a cache hit through ``ModelLoadService.load_model`` (events included), median of
  1,000 calls in one process.  Target: < 1 ms.
* ``ram``: a 1 GB RAM cache and five ~300 MB models loaded in turn in one process: the
  cache's resident bytes never exceed 1 GB (its peak is printed) and the process's peak RSS
  stays within 1.3 GB.

    .venv/bin/python bench/load.py [--only unet single hit ram] [--rounds 5] [--device cpu|cuda]

On a machine with a GPU, ``--device cuda`` runs every figure there (fp16, as the loader
does on CUDA); the baseline then loads with the same dtype and device.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
#: SD-1's UNet layout at 30% of its width: 311 MB of float32 weights
UNET_300MB = {"block_out_channels": [96, 192, 384, 384], "attention_head_dim": 8, "cross_attention_dim": 768,
              "layers_per_block": 2}
MB = 2**20


def _run(code: str, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``python -c code`` as a whole process: (wall s, CPU s of the child, its stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench child failed:\n{code}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _unet_config() -> dict[str, Any]:
    return {"sample_size": 64, "in_channels": 4, "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, **UNET_300MB}


def build_pipeline(root: Path) -> Path:
    """A sd-1 diffusers pipeline folder whose UNet has ~300 MB of weights."""
    import torch
    from diffusers import UNet2DConditionModel

    from reconciler.testing.models import write_diffusers_pipeline

    folder = write_diffusers_pipeline(root / "pipe", base="sd-1")
    shutil.rmtree(folder / "unet")
    torch.manual_seed(0)
    UNet2DConditionModel(**_unet_config()).save_pretrained(folder / "unet")
    return folder


def register(settings: Any, name: str, path: Path, **fields: Any) -> str:
    from reconciler.store.base import ModelRecordServiceBase

    with ModelRecordServiceBase.from_db_file(settings.db_path) as store:
        store.add_model(name, {"name": name, "type": "main", "base": "sd-1", "path": str(path), **fields})
    return name


def _settings(root: Path, device: str) -> Any:
    from reconciler.settings import load_settings

    return load_settings(models_dir=root / "models", environ={}, device=device,
                         load_configs_dir=root / "configs", ram_cache_size=1.0)


def _service_code(root: Path, device: str, key: str, submodel: str | None) -> str:
    return (
        "from reconciler.settings import load_settings\n"
        "from reconciler.load import ModelLoadService\n"
        f"s = load_settings(models_dir={str(root / 'models')!r}, environ={{}}, device={device!r}, "
        f"load_configs_dir={str(root / 'configs')!r})\n"
        "svc = ModelLoadService(app_config=s)\n"
        f"m = svc.get_model_by_key({key!r}, {submodel!r})\n"
        "with m as model: pass\n"
        "print(type(model).__name__)\n"
    )


def _dtype_for(device: str) -> str:
    return "torch.float16" if device.startswith("cuda") else "torch.float32"


def bench_unet(root: Path, rounds: int, device: str) -> None:
    pipe = build_pipeline(root)
    settings = _settings(root, device)
    register(settings, "unet-pipe", pipe, format="diffusers")
    size = sum(p.stat().st_size for p in (pipe / "unet").iterdir())
    ours_code = _service_code(root, device, "unet-pipe", "unet")
    base_code = ("import torch\nfrom diffusers import UNet2DConditionModel\n"
                 f"m = UNet2DConditionModel.from_pretrained({str(pipe / 'unet')!r}, torch_dtype={_dtype_for(device)})"
                 f".to({device!r})\nprint(type(m).__name__)\n")
    ours, base = [], []
    _run(base_code)  # warm the page cache for both sides alike
    for _ in range(rounds):
        ours.append(_run(ours_code))
        base.append(_run(base_code))
    o, b = statistics.median(w for w, _c, _o in ours), statistics.median(w for w, _c, _o in base)
    oc, bc = statistics.median(c for _w, c, _o in ours), statistics.median(c for _w, c, _o in base)
    ratio = o / b
    print(f"unet   cold load_model of a {size / MB:.0f} MB diffusers UNet, whole process, median of {rounds}:")
    print(f"       ours {o:.2f} s ({oc:.2f} CPU s)   from_pretrained {b:.2f} s ({bc:.2f} CPU s)   "
          f"ratio {ratio:.3f}  target <= 1.05 {'met' if ratio <= 1.05 else 'MISSED'}")


def bench_single(root: Path, rounds: int, device: str) -> None:
    from reconciler.testing import ldm

    configs = root / "configs"
    ldm.write_tiny_config_folder(configs / "sd-1", "sd-1")
    unet_cfg = json.loads((configs / "sd-1" / "unet" / "config.json").read_text())
    unet_cfg.update(_unet_config())
    unet_cfg["cross_attention_dim"] = ldm.TEXT_HIDDEN["te1"]
    (configs / "sd-1" / "unet" / "config.json").write_text(json.dumps(unet_cfg))
    ckpt = root / "sd15-like.safetensors"
    _write_checkpoint_from_configs(configs / "sd-1", ckpt)
    settings = _settings(root, device)
    size = ckpt.stat().st_size
    first_t, cached_t, base_t = [], [], []
    base_code = (
        "import torch\nfrom diffusers import StableDiffusionPipeline\n"
        f"p = StableDiffusionPipeline.from_single_file({str(ckpt)!r}, config={str(configs / 'sd-1')!r}, "
        f"local_files_only=True, torch_dtype={_dtype_for(device)}).to({device!r})\n"
        "print(type(p.unet).__name__)\n")
    for i in range(rounds):
        key = f"ckpt-{i}"
        linked = root / f"sd15-like-{i}.safetensors"  # one record per round: each converts afresh
        if not linked.exists():
            os.link(ckpt, linked)
        register(settings, key, linked, format="checkpoint")
        first_t.append(_run(_service_code(root, device, key, "unet"))[0])
        cached_t.append(_run(_service_code(root, device, key, "unet"))[0])
        base_t.append(_run(base_code)[0])
    first, cached, base = (statistics.median(x) for x in (first_t, cached_t, base_t))
    print(f"single single-file checkpoint ({size / MB:.0f} MB), unet submodel, whole process, median of {rounds}:")
    print(f"       first load (converts) {first:.2f} s   again in a new process (convert cache) {cached:.2f} s   "
          f"from_single_file with a local config {base:.2f} s   ratios {first / base:.2f} / {cached / base:.2f}")


def _write_checkpoint_from_configs(config_folder: Path, path: Path) -> None:
    """A complete sd-1 LDM checkpoint whose components have the shapes of ``config_folder``."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from reconciler.testing import ldm

    torch.manual_seed(0)
    unet_cfg = UNet2DConditionModel.load_config(config_folder / "unet")
    vae_cfg = AutoencoderKL.load_config(config_folder / "vae")
    models = {"unet": UNet2DConditionModel.from_config(unet_cfg), "vae": AutoencoderKL.from_config(vae_cfg),
              "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(config_folder / "text_encoder"))}
    state = ldm.ldm_state_dict(models, "sd-1", configs={"unet": dict(unet_cfg), "vae": dict(vae_cfg)})
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def bench_hit(root: Path, device: str) -> None:
    from reconciler.load import ModelLoadService
    from reconciler.testing.models import write_lora_kohya

    settings = _settings(root, device)
    lora = write_lora_kohya(root / "lora.safetensors", base="sd-1")
    from reconciler.store.base import ModelRecordServiceBase

    with ModelRecordServiceBase.from_db_file(settings.db_path) as store:
        store.add_model("lora", {"name": "lora", "type": "lora", "format": "lycoris", "base": "sd-1",
                                 "path": str(lora)})
        config = store.get_model("lora")
        svc = ModelLoadService(app_config=settings, record_store=store)
        svc.load_model(config)
        times = []
        for _ in range(1000):
            t0 = time.perf_counter()
            loaded = svc.load_model(config)
            times.append(time.perf_counter() - t0)
            assert loaded.cache_hit
        median_ms = statistics.median(times) * 1000
    print(f"hit    cache hit through load_model, median of 1,000: {median_ms:.3f} ms   "
          f"(p99 {sorted(times)[989] * 1000:.3f} ms)   target < 1 ms {'met' if median_ms < 1 else 'MISSED'}")


def bench_ram(root: Path, device: str) -> None:
    pipe = root / "pipe" if (root / "pipe").is_dir() else build_pipeline(root)
    code = (
        "import os, resource, shutil\n"
        "from pathlib import Path\n"
        "from reconciler.settings import load_settings\n"
        "from reconciler.load import ModelLoadService\n"
        "from reconciler.store.base import ModelRecordServiceBase\n"
        f"root = Path({str(root)!r})\n"
        f"s = load_settings(models_dir=root / 'ram-models', environ={{}}, device={device!r}, ram_cache_size=1.0)\n"
        "store = ModelRecordServiceBase.from_db_file(s.db_path)\n"
        "for i in range(5):\n"
        "    copy = root / f'pipe-{i}'\n"
        "    if not copy.exists():\n"
        f"        shutil.copytree({str(pipe)!r}, copy, copy_function=os.link)\n"
        "    store.add_model(f'p{i}', {'name': f'p{i}', 'type': 'main', 'base': 'sd-1', 'format': 'diffusers',"
        " 'path': str(copy)})\n"
        "svc = ModelLoadService(app_config=s, record_store=store)\n"
        "peak = 0\n"
        "for i in range(5):\n"
        "    m = svc.get_model_by_key(f'p{i}', 'unet')\n"
        "    with m:\n"
        "        peak = max(peak, svc.ram_cache.resident_bytes())\n"
        "    del m\n"
        "    peak = max(peak, svc.ram_cache.resident_bytes())\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(peak, svc.ram_cache.stats.high_water, rss, svc.ram_cache.stats.evictions)\n"
    )
    _wall, _cpu, out = _run(code)
    peak, high_water, rss, evictions = (int(x) for x in out.split())
    gb = 2**30
    print(f"ram    1 GB cache, five {_unet_bytes(pipe) / MB:.0f} MB UNets loaded in turn: cache peak "
          f"{max(peak, high_water) / MB:.0f} MB (budget {gb / MB:.0f} MB) "
          f"{'met' if max(peak, high_water) <= gb else 'MISSED'}; {evictions} evictions; process peak RSS "
          f"{rss / MB:.0f} MB (limit 1.3 GB = {1.3 * gb / MB:.0f} MB) {'met' if rss <= 1.3 * gb else 'MISSED'}")


def _unet_bytes(pipe: Path) -> int:
    return sum(p.stat().st_size for p in (pipe / "unet").iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["unet", "single", "hit", "ram"],
                        choices=["unet", "single", "hit", "ram"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the bench files here")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-load-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        if "unet" in args.only:
            bench_unet(root, args.rounds, args.device)
        if "single" in args.only:
            bench_single(root, args.rounds, args.device)
        if "hit" in args.only:
            bench_hit(root, args.device)
        if "ram" in args.only:
            bench_ram(root, args.device)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
