"""Disk use of one models dir shown to ComfyUI and A1111 (README "Views"): du of the models dir
and both app trees, with `link: hardlink` and with `link: copy`.

    .venv/bin/python bench/views_du.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from reconciler.testing import models as tm

WRITERS = {"ckpt": (tm.write_main_checkpoint, "ckpt.safetensors"), "vae": (tm.write_vae_checkpoint, "vae.safetensors"),
           "lora": (tm.write_lora_kohya, "lora.safetensors"), "emb": (tm.write_textual_inversion, "emb.safetensors"),
           "cn": (tm.write_controlnet_checkpoint, "cn.safetensors"), "pipe": (tm.write_diffusers_pipeline, "pipe")}


def du(*paths: Path) -> str:
    """`du -sck` (hardlinked files counted once across the paths given together)."""
    return subprocess.run(["du", "-sck", *map(str, paths)], capture_output=True, text=True, check=True).stdout


def run(link: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "files").mkdir()
        models = []
        for name, (writer, file) in WRITERS.items():
            writer(root / "files" / file)
            models.append(f"    - {{name: {name}, source: ../files/{file}}}")
        (root / "manifests").mkdir()
        view = "---\napiVersion: reconciler/v1\nkind: ModelView\nmetadata: {{name: {a}}}\nspec: {{app: {a}, root: ../{n}, link: {link}}}\n"
        (root / "manifests" / "m.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: studio}\nspec:\n  models:\n"
            + "\n".join(models) + "\n" + view.format(n="ComfyUI", a="comfyui", link=link)
            + view.format(n="stable-diffusion-webui", a="a1111", link=link))
        exe = Path(sys.executable).with_name("reconciler")
        subprocess.run([str(exe), "--models-dir", str(root / "models"), "apply", "-y", str(root / "manifests")],
                       check=True, capture_output=True, cwd=root / "manifests")
        print(f"link: {link}")
        print(textwrap.indent(du(root / "models", root / "ComfyUI", root / "stable-diffusion-webui"), "  "))


if __name__ == "__main__":
    run("hardlink")
    run("copy")
