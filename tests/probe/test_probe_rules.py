"""Each probe rule on a tiny synthetic model written by reconciler.testing.models."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.configs import validate_config
from reconciler.probe import probe_model
from reconciler.taxonomy import (
    BaseModelType,
    ModelFormat,
    ModelRepoVariant,
    ModelType,
    ModelVariantType,
    SchedulerPredictionType,
)
from reconciler.testing import models as m

SD1, SD2, SDXL, REFINER = (BaseModelType.StableDiffusion1, BaseModelType.StableDiffusion2,
                           BaseModelType.StableDiffusionXL, BaseModelType.StableDiffusionXLRefiner)
EPS, VPRED = SchedulerPredictionType.Epsilon, SchedulerPredictionType.VPrediction


def kind(result) -> tuple[str, str, str]:
    return (result.type.value, result.format.value, result.base.value)


@pytest.mark.parametrize(("base", "variant", "prediction", "config"), [
    ("sd-1", "normal", EPS, "stable-diffusion/v1-inference.yaml"),
    ("sd-1", "inpaint", EPS, "stable-diffusion/v1-inpainting-inference.yaml"),
    ("sd-2", "normal", VPRED, "stable-diffusion/v2-inference-v.yaml"),
    ("sd-2", "inpaint", EPS, "stable-diffusion/v2-inpainting-inference.yaml"),
    ("sd-2", "depth", EPS, "stable-diffusion/v2-midas-inference.yaml"),
    ("sdxl", "normal", EPS, "stable-diffusion/sd_xl_base.yaml"),
    ("sdxl", "inpaint", EPS, "stable-diffusion/sd_xl_inpaint.yaml"),
    ("sdxl-refiner", "normal", EPS, "stable-diffusion/sd_xl_refiner.yaml"),
])
def test_main_checkpoint(tmp_path: Path, check_valid, base, variant, prediction, config) -> None:
    path = m.write_main_checkpoint(tmp_path / "model.safetensors", base=base, variant=variant)
    r = probe_model(path)
    assert kind(r) == ("main", "checkpoint", base)
    assert r.fields["variant"] is ModelVariantType(variant)
    assert r.fields["prediction_type"] is prediction
    assert r.fields["upcast_attention"] is (prediction is VPRED)
    assert r.fields["config"] == config
    assert r.notes == []
    check_valid(r, path)
    assert path.stat().st_size < 64 * 1024


def test_main_checkpoint_prefers_yaml_beside_it(tmp_path: Path) -> None:
    path = m.write_main_checkpoint(tmp_path / "model.safetensors")
    (tmp_path / "model.yaml").write_text("model: {}\n")
    assert probe_model(path).fields["config"] == str((tmp_path / "model.yaml").absolute())


@pytest.mark.parametrize(("base", "name", "expected"), [
    ("sd-1", "vae.safetensors", SD1),
    ("sdxl", "vae.safetensors", SDXL),          # told by modelspec metadata
    ("sd-1", "sdxl_vae.safetensors", SDXL),     # told by the name, as InvokeAI does for folders
])
def test_vae_checkpoint(tmp_path: Path, check_valid, base, name, expected) -> None:
    path = m.write_vae_checkpoint(tmp_path / name, base=base)
    r = probe_model(path)
    assert (r.type, r.format, r.base) == (ModelType.Vae, ModelFormat.Checkpoint, expected)
    check_valid(r, path)


@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_lora_kohya(tmp_path: Path, check_valid, base) -> None:
    path = m.write_lora_kohya(tmp_path / "lora.safetensors", base=base)
    r = probe_model(path)
    assert kind(r) == ("lora", "lycoris", base)
    check_valid(r, path)


def test_lora_kohya_text_encoder_only(tmp_path: Path) -> None:
    """Without UNet layers the text encoders decide: CLIP-L + CLIP-G = 2048 is sdxl."""
    import numpy as np

    t = {"lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": np.zeros((1, 768), np.float16),
         "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": np.zeros((1, 1280), np.float16)}
    path = m.write_safetensors(tmp_path / "te.safetensors", t)
    assert probe_model(path).base is SDXL


@pytest.mark.parametrize("algo", ["loha", "lokr"])
@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_lycoris(tmp_path: Path, check_valid, algo, base) -> None:
    path = m.write_lora_lycoris(tmp_path / "lyco.safetensors", base=base, algo=algo)
    r = probe_model(path)
    assert kind(r) == ("lora", "lycoris", base)
    check_valid(r, path)


@pytest.mark.parametrize("style", ["peft", "attn_procs"])
@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_lora_diffusers_file(tmp_path: Path, check_valid, style, base) -> None:
    path = m.write_lora_diffusers(tmp_path / "lora.safetensors", base=base, style=style)
    r = probe_model(path)
    assert kind(r) == ("lora", "lycoris", base)  # a single file is lycoris format, as in InvokeAI
    check_valid(r, path)


@pytest.mark.parametrize("base", ["sd-1", "sdxl"])
def test_lora_diffusers_folder(tmp_path: Path, check_valid, base) -> None:
    folder = m.write_lora_diffusers_folder(tmp_path / "lora", base=base)
    r = probe_model(folder)
    assert kind(r) == ("lora", "diffusers", base)
    check_valid(r, folder)


@pytest.mark.parametrize(("base", "form"), [
    ("sd-1", "emb_params"), ("sd-1", "string_to_param"), ("sd-1", "diffusers"),
    ("sd-2", "emb_params"), ("sd-2", "diffusers"), ("sdxl", None),
])
def test_textual_inversion_file(tmp_path: Path, check_valid, base, form) -> None:
    path = m.write_textual_inversion(tmp_path / "ti.safetensors", base=base, form=form)
    r = probe_model(path)
    assert kind(r) == ("embedding", "embedding_file", base)
    check_valid(r, path)


@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_textual_inversion_folder(tmp_path: Path, check_valid, base) -> None:
    folder = m.write_textual_inversion_folder(tmp_path / "ti", base=base)
    r = probe_model(folder)
    assert kind(r) == ("embedding", "embedding_folder", base)
    check_valid(r, folder)


@pytest.mark.parametrize(("base", "layout", "config"), [
    ("sd-1", "ldm", "controlnet/cldm_v15.yaml"),
    ("sd-2", "ldm", "controlnet/cldm_v21.yaml"),
    ("sd-1", "diffusers", "controlnet/cldm_v15.yaml"),
    ("sdxl", "diffusers", None),
])
def test_controlnet_checkpoint(tmp_path: Path, check_valid, base, layout, config) -> None:
    path = m.write_controlnet_checkpoint(tmp_path / "cn.safetensors", base=base, layout=layout)
    r = probe_model(path)
    assert kind(r) == ("controlnet", "checkpoint", base)
    assert r.fields["config"] == config
    check_valid(r, path)


@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_controlnet_diffusers(tmp_path: Path, check_valid, base) -> None:
    folder = m.write_controlnet_diffusers(tmp_path / "cn", base=base)
    r = probe_model(folder)
    assert kind(r) == ("controlnet", "diffusers", base)
    check_valid(r, folder)


@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl"])
def test_ip_adapter_checkpoint(tmp_path: Path, check_valid, base) -> None:
    path = m.write_ip_adapter_checkpoint(tmp_path / "ip.safetensors", base=base)
    r = probe_model(path)
    assert kind(r) == ("ip_adapter", "checkpoint", base)
    check_valid(r, path)


def test_ip_adapter_folder(tmp_path: Path, check_valid) -> None:
    folder = m.write_ip_adapter_folder(tmp_path / "ip", base="sdxl", image_encoder="org/encoder")
    r = probe_model(folder)
    assert kind(r) == ("ip_adapter", "invokeai", "sdxl")
    assert r.fields["image_encoder_model_id"] == "org/encoder"
    check_valid(r, folder)


@pytest.mark.parametrize(("base", "variant", "prediction", "upcast"), [
    ("sd-1", "normal", EPS, False),
    ("sd-1", "inpaint", EPS, False),
    ("sd-2", "normal", VPRED, True),      # v_prediction from scheduler_config.json
    ("sd-2", "depth", EPS, False),
    ("sdxl", "normal", EPS, False),
    ("sdxl", "inpaint", EPS, False),
    ("sdxl-refiner", "normal", EPS, False),
])
def test_diffusers_pipeline(tmp_path: Path, check_valid, base, variant, prediction, upcast) -> None:
    folder = m.write_diffusers_pipeline(tmp_path / "pipe", base=base, variant=variant)
    r = probe_model(folder)
    assert kind(r) == ("main", "diffusers", base)
    assert r.fields["variant"] is ModelVariantType(variant)
    assert r.fields["prediction_type"] is prediction
    assert r.fields["upcast_attention"] is upcast
    assert r.fields["repo_variant"] is ModelRepoVariant.Default
    check_valid(r, folder)


def test_diffusers_pipeline_sd2_epsilon_and_fp16(tmp_path: Path) -> None:
    folder = m.write_diffusers_pipeline(tmp_path / "pipe", base="sd-2", prediction_type="epsilon", fp16=True)
    r = probe_model(folder)
    assert r.fields["prediction_type"] is EPS and r.fields["upcast_attention"] is False
    assert r.fields["repo_variant"] is ModelRepoVariant.FP16


@pytest.mark.parametrize(("base", "expected"), [("sd-1", SD1), ("sdxl", SDXL)])
def test_vae_diffusers(tmp_path: Path, check_valid, base, expected) -> None:
    folder = m.write_vae_diffusers(tmp_path / "vae", base=base)
    r = probe_model(folder)
    assert (r.type, r.format, r.base) == (ModelType.Vae, ModelFormat.Diffusers, expected)
    check_valid(r, folder)


def test_clip_vision(tmp_path: Path, check_valid) -> None:
    folder = m.write_clip_vision(tmp_path / "enc")
    r = probe_model(folder)
    assert kind(r) == ("clip_vision", "diffusers", "any")
    check_valid(r, folder)


@pytest.mark.parametrize("base", ["sd-1", "sdxl"])
def test_t2i_adapter(tmp_path: Path, check_valid, base) -> None:
    folder = m.write_t2i_adapter(tmp_path / "t2i", base=base)
    r = probe_model(folder)
    assert kind(r) == ("t2i_adapter", "diffusers", base)
    check_valid(r, folder)


@pytest.mark.parametrize("base", ["sd-1", "sd-2"])
def test_onnx(tmp_path: Path, check_valid, base) -> None:
    folder = m.write_onnx_pipeline(tmp_path / "onnx", base=base)
    r = probe_model(folder)
    assert kind(r) == ("onnx", "onnx", base)
    assert r.fields["repo_variant"] is ModelRepoVariant.ONNX
    assert r.notes == []
    check_valid(r, folder)


def test_onnx_without_unet_config_is_assumed_sd1_with_a_note(tmp_path: Path) -> None:
    folder = m.write_onnx_pipeline(tmp_path / "onnx", with_unet_config=False)
    r = probe_model(folder)
    assert r.base is SD1
    assert any("assumed base sd-1" in n for n in r.notes)


def test_every_config_class_is_reached(tmp_path: Path) -> None:
    """Between them the builders produce every type.format the config union knows but olive."""
    from reconciler.configs import CONFIG_CLASSES

    paths = [
        m.write_main_checkpoint(tmp_path / "a.safetensors"),
        m.write_diffusers_pipeline(tmp_path / "b"),
        m.write_onnx_pipeline(tmp_path / "c"),
        m.write_vae_checkpoint(tmp_path / "d.safetensors"),
        m.write_vae_diffusers(tmp_path / "e"),
        m.write_lora_kohya(tmp_path / "f.safetensors"),
        m.write_lora_diffusers_folder(tmp_path / "g"),
        m.write_textual_inversion(tmp_path / "h.safetensors"),
        m.write_textual_inversion_folder(tmp_path / "i"),
        m.write_controlnet_checkpoint(tmp_path / "j.safetensors"),
        m.write_controlnet_diffusers(tmp_path / "k"),
        m.write_ip_adapter_folder(tmp_path / "l"),
        m.write_ip_adapter_checkpoint(tmp_path / "n.safetensors"),
        m.write_clip_vision(tmp_path / "o"),
        m.write_t2i_adapter(tmp_path / "p"),
    ]
    seen = set()
    for p in paths:
        r = probe_model(p)
        cfg = validate_config({**r.fields, "name": p.name, "path": str(p)})
        seen.add(f"{cfg.type.value}.{cfg.format.value}")
    assert seen == set(CONFIG_CLASSES) - {"onnx.olive"}
