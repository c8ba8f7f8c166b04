"""Diffusers pipelines and single-model folders, loaded for real through ModelLoadService."""

from __future__ import annotations

import pytest

from reconciler.errors import LoadError
from reconciler.testing import models as m


def test_sd1_pipeline_whole_and_each_submodel(env) -> None:
    import torch

    folder = m.write_diffusers_pipeline(env.models_dir / "sd1-pipe", base="sd-1")
    config = env.register(folder, "main", "diffusers", "sd-1")
    svc = env.service()
    kinds = {}
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        with svc.load_model(config, sub) as model:
            kinds[sub] = type(model).__name__
    assert kinds == {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "text_encoder": "CLIPTextModel",
                     "tokenizer": "CLIPTokenizer", "scheduler": "DDIMScheduler"}
    with svc.load_model(config, "unet") as unet:  # a cache hit, and one forward step
        assert unet.dtype == torch.float32  # CPU: fp32
        out = unet(torch.randn(1, 4, 8, 8), 10, encoder_hidden_states=torch.randn(1, 3, 16)).sample
        assert out.shape == (1, 4, 8, 8)
    with svc.load_model(config) as pipe:
        assert type(pipe).__name__ == "StableDiffusionPipeline"
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)


def test_sdxl_pipeline_runs_two_steps(env) -> None:
    folder = m.write_diffusers_pipeline(env.models_dir / "xl-pipe", base="sdxl")
    config = env.register(folder, "main", "diffusers", "sdxl")
    with env.service().load_model(config) as pipe:
        assert type(pipe).__name__ == "StableDiffusionXLPipeline"
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)


@pytest.mark.parametrize("base", ["sd-2", "sdxl-refiner"])
def test_other_bases_load_their_submodels(env, base: str) -> None:
    folder = m.write_diffusers_pipeline(env.models_dir / f"{base}-pipe", base=base)
    config = env.register(folder, "main", "diffusers", base)
    svc = env.service()
    with svc.load_model(config, "unet") as unet:
        assert unet.config.cross_attention_dim == m.CROSS_ATTENTION_WIDTH[base]
    encoder = "text_encoder_2" if base == "sdxl-refiner" else "text_encoder"
    with svc.load_model(config, encoder) as te:
        assert type(te).__name__.startswith("CLIPTextModel")
    if base == "sdxl-refiner":  # the refiner has no first text encoder: a clear error
        with pytest.raises(LoadError, match="has no text_encoder"):
            svc.load_model(config, "text_encoder")


def test_fp16_repo_variant_files_are_used(env, same_weights) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    folder = m.write_diffusers_pipeline(env.models_dir / "fp16-pipe", base="sd-1", fp16=True)
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    config = env.register(folder, "main", "diffusers", "sd-1", repo_variant="fp16")
    with env.service().load_model(config, "unet") as unet:
        assert unet.dtype == torch.float32  # the fp16 files, cast to the CPU's precision
        reference = UNet2DConditionModel.from_pretrained(folder / "unet", variant="fp16", torch_dtype=torch.float32)
        assert same_weights(unet, reference)
    # a record asking for fp16 where a component has only default weights loads the default ones
    plain = m.write_diffusers_pipeline(env.models_dir / "plain-pipe", base="sd-1")
    config = env.register(plain, "main", "diffusers", "sd-1", repo_variant="fp16")
    with env.service().load_model(config) as pipe:
        assert pipe.unet.dtype == torch.float32


def test_precision_setting_applies(env) -> None:
    import torch

    folder = m.write_diffusers_pipeline(env.models_dir / "bf16", base="sd-1")
    config = env.register(folder, "main", "diffusers", "sd-1")
    with env.service(precision="bfloat16").load_model(config, "vae") as vae:
        assert vae.dtype == torch.bfloat16


def test_vae_diffusers_folder_decodes(env) -> None:
    import torch

    folder = m.write_vae_diffusers(env.models_dir / "vae-xl", base="sdxl")
    config = env.register(folder, "vae", "diffusers", "sdxl")
    with env.service().load_model(config) as vae:
        assert vae.config.scaling_factor == 0.13025
        image = vae.decode(torch.randn(1, 4, 4, 4)).sample
    assert image.shape == (1, 3, 4, 4)


def test_controlnet_diffusers_folder_runs(env) -> None:
    import torch

    folder = m.write_controlnet_diffusers(env.models_dir / "cn", base="sd-1")
    config = env.register(folder, "controlnet", "diffusers", "sd-1")
    with env.service().load_model(config) as cn:
        out = cn(torch.randn(1, 4, 8, 8), 10, encoder_hidden_states=torch.randn(1, 2, 768),
                 controlnet_cond=torch.randn(1, 3, 8, 8), return_dict=True)
    assert out.mid_block_res_sample.shape[0] == 1


def test_t2i_adapter_and_clip_vision_run(env) -> None:
    import torch

    t2i = env.register(m.write_t2i_adapter(env.models_dir / "t2i", base="sd-1"), "t2i_adapter", "diffusers", "sd-1")
    clip = env.register(m.write_clip_vision(env.models_dir / "clip-vision"), "clip_vision", "diffusers", "any")
    svc = env.service()
    with svc.load_model(t2i) as adapter:
        assert type(adapter).__name__ == "T2IAdapter"
        features = adapter(torch.randn(1, 3, 64, 64))
    assert features[0].shape[0] == 1
    with svc.load_model(clip) as encoder:
        assert type(encoder).__name__ == "CLIPVisionModelWithProjection"
        embeds = encoder(pixel_values=torch.randn(1, 3, 8, 8)).image_embeds
    assert embeds.shape == (1, 8)


def test_single_models_have_no_submodels(env) -> None:
    config = env.register(m.write_vae_diffusers(env.models_dir / "vae"), "vae", "diffusers", "sd-1")
    with pytest.raises(LoadError, match="no submodel"):
        env.service().load_model(config, "unet")


def test_submodel_missing_from_disk_is_a_clear_error(env) -> None:
    import shutil

    from reconciler.errors import ModelNotFoundException

    folder = m.write_diffusers_pipeline(env.models_dir / "broken", base="sd-1")
    shutil.rmtree(folder / "vae")
    config = env.register(folder, "main", "diffusers", "sd-1")
    with pytest.raises(ModelNotFoundException, match="vae"):
        env.service().load_model(config, "vae")


