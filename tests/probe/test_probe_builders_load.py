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
