"""Write the quick start's tiny real model files into ``examples/quickstart/files/``.

Run from anywhere: ``python examples/quickstart/make_models.py``.  The output is
deterministic (same bytes every run), a few hundred KB in all, and needs numpy and
safetensors only:

  files/tiny-sd1.safetensors         main, sd-1, single-file checkpoint (LDM keys)
  files/house-vae.safetensors        vae, sd-1, checkpoint
  files/tiny-lora.safetensors        lora (kohya keys), sd-1, lycoris format
  files/tiny-embedding.safetensors   embedding (textual inversion), sd-1, embedding_file
  files/tiny-sd1-diffusers/          main, sd-1, diffusers pipeline; diffusers loads and runs it

Each file is what the prober says it is (``--check`` probes them after writing).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run from a checkout without installing

from reconciler.testing import models as m  # noqa: E402

FILES = HERE / "files"


def make(out: Path = FILES) -> list[Path]:
    """Write the quick start's models into ``out`` (replacing earlier copies); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    pipeline = out / "tiny-sd1-diffusers"
    if pipeline.exists():
        shutil.rmtree(pipeline)
    return [
        m.write_main_checkpoint(out / "tiny-sd1.safetensors", base="sd-1"),
        m.write_vae_checkpoint(out / "house-vae.safetensors", base="sd-1"),
        m.write_lora_kohya(out / "tiny-lora.safetensors", base="sd-1"),
        m.write_textual_inversion(out / "tiny-embedding.safetensors", base="sd-1"),
        m.write_diffusers_pipeline(pipeline, base="sd-1"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=FILES)
    ap.add_argument("--check", action="store_true", help="probe each model after writing it")
    args = ap.parse_args()
    total = 0
    for path in make(args.out):
        size = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())
        total += size
        line = f"{path.relative_to(args.out.parent) if path.is_relative_to(args.out.parent) else path}  {size:>8,} B"
        if args.check:
            from reconciler.probe import probe_model

            r = probe_model(path)
            line += f"  {r.type.value}.{r.format.value} {r.base.value}"
        print(line)
    print(f"total {total:,} B")


if __name__ == "__main__":
    main()
