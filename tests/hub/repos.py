"""Tiny real repos for the fake hub, as ``{path: bytes}`` (built with reconciler.testing.models)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from reconciler.testing.models import write_diffusers_pipeline, write_lora_kohya, write_main_checkpoint


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def diffusers_repo_files() -> dict[str, bytes]:
    """An sd-1 diffusers repo laid out like runwayml/stable-diffusion-v1-5.

    * unet/ and vae/: default and fp16 weights (``*.fp16.safetensors``);
    * text_encoder/: default weights only (an fp16 request falls back, with a note);
    * unet/diffusion_flax_model.msgpack (flax), unet/model.onnx (onnx) extras;
    * tokenizer/, scheduler/, model_index.json, README.md, .gitattributes;
    * v1-5-pruned-emaonly.safetensors: a single-file checkpoint at the top (a mixed repo).
    """
    with tempfile.TemporaryDirectory() as tmp:
        full, half = Path(tmp) / "fp32", Path(tmp) / "fp16"
        write_diffusers_pipeline(full, base="sd-1")
        write_diffusers_pipeline(half, base="sd-1", fp16=True)
        files = _read_tree(full)
        for path, data in _read_tree(half).items():
            if path.endswith(".fp16.safetensors") and not path.startswith("text_encoder/"):
                files[path] = data
        write_main_checkpoint(Path(tmp) / "ckpt.safetensors", base="sd-1")
        files["v1-5-pruned-emaonly.safetensors"] = (Path(tmp) / "ckpt.safetensors").read_bytes()
    files["unet/diffusion_flax_model.msgpack"] = b"\x81\xa4flax\xc0"
    files["unet/model.onnx"] = b"\x08\x07onnx-tiny"
    files["README.md"] = b"---\nlicense: creativeml-openrail-m\ntags: [stable-diffusion]\n---\n# tiny sd\n"
    files[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    return files


def single_file_repo_files() -> dict[str, bytes]:
    """A LoRA repo: one weights file at the top, a README."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lora_kohya(Path(tmp) / "detail.safetensors", base="sd-1")
        data = path.read_bytes()
    return {"detail-tweaker.safetensors": data, "README.md": b"# a lora\n"}
