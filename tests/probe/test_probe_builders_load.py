"""The builders' files are real: diffusers loads the tiny pipeline and runs it."""

from __future__ import annotations

from pathlib import Path

from reconciler.probe import probe_model
from reconciler.testing import models as m


def test_tiny_sd1_pipeline_loads_and_runs_in_diffusers(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline  # heavy: imported here only

    folder = m.write_diffusers_pipeline(tmp_path / "tiny-sd1", base="sd-1")
    assert probe_model(folder).base.value == "sd-1"
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    assert pipe.unet.config.cross_attention_dim == 768
    images = pipe("a cat", num_inference_steps=1, height=8, width=8, output_type="np").images
    assert images.shape == (1, 8, 8, 3)


def test_component_folders_load(tmp_path: Path) -> None:
    from diffusers import ControlNetModel, T2IAdapter, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    ControlNetModel.from_pretrained(m.write_controlnet_diffusers(tmp_path / "cn", base="sdxl"))
    T2IAdapter.from_pretrained(m.write_t2i_adapter(tmp_path / "t2i", base="sdxl"))
    CLIPVisionModelWithProjection.from_pretrained(m.write_clip_vision(tmp_path / "cv"))
    pipe = m.write_diffusers_pipeline(tmp_path / "xl", base="sdxl", fp16=True)
    unet = UNet2DConditionModel.from_pretrained(pipe / "unet", variant="fp16")
    assert unet.config.cross_attention_dim == 2048


def test_every_builder_file_reads_back_with_safetensors(tmp_path: Path) -> None:
    """The header reader agrees with the safetensors library on every file the builders write."""
    from safetensors import safe_open

    from reconciler.probe import model_files, read_safetensors_header

    made = [
        m.write_main_checkpoint(tmp_path / "a.safetensors", base="sdxl-refiner", variant="normal"),
        m.write_vae_checkpoint(tmp_path / "b.safetensors", base="sdxl"),
        m.write_lora_kohya(tmp_path / "c.safetensors", base="sdxl"),
        m.write_lora_lycoris(tmp_path / "d.safetensors", algo="lokr"),
        m.write_lora_diffusers(tmp_path / "e.safetensors", style="attn_procs"),
        m.write_textual_inversion(tmp_path / "f.safetensors", form="string_to_param"),
        m.write_controlnet_checkpoint(tmp_path / "g.safetensors"),
        m.write_ip_adapter_folder(tmp_path / "h"),
        m.write_diffusers_pipeline(tmp_path / "i", base="sdxl", fp16=True),
    ]
    count = 0
    for model in made:
        for f in model_files(model):
            if f.suffix != ".safetensors":
                continue
            ours = read_safetensors_header(f)
            with safe_open(str(f), framework="numpy") as st:
                assert {k: tuple(st.get_slice(k).get_shape()) for k in st.keys()} == ours.shapes()
                assert (st.metadata() or {}) == ours.metadata
            count += 1
    assert count == 12
