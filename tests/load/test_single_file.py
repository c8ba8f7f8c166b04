"""Single-file checkpoints: converted offline against a local config folder, cached, reconverted
when the file or the prediction type changes; tokenizers resolved (never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import LoadError, MissingLoadFilesError
from reconciler.load.model_loaders import one_file, single_file
from reconciler.testing import ldm


@pytest.fixture
def convert_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts diffusers' from_single_file conversions (unet, vae, controlnet)."""
    calls: list[str] = []
    real = single_file.convert_diffusers_model

    def counting(cls, checkpoint, root, subfolder, *args, **kwargs):
        calls.append(subfolder or cls.__name__)
        return real(cls, checkpoint, root, subfolder, *args, **kwargs)

    for module in (single_file, one_file):
        monkeypatch.setattr(module, "convert_diffusers_model", counting)
    return calls


def _checkpoint(env, base: str, variant: str = "normal", tokenizers: bool = True, name: str | None = None,
                **fields):
    path = env.models_dir / (name or f"{base}-{variant}.safetensors")
    models = ldm.write_tiny_main_checkpoint(path, base, variant)
    ldm.write_tiny_config_folder(env.configs_dir / ldm.config_name(base, variant, fields.get("prediction_type",
                                                                                            "epsilon")),
                                 base, variant, tokenizers=tokenizers)
    config = env.register(path, "main", "checkpoint", base, variant=variant, **fields)
    return config, models


@pytest.mark.parametrize("base", ["sd-1", "sd-2", "sdxl", "sdxl-refiner"])
def test_checkpoint_converts_to_the_same_weights(env, same_weights, base: str) -> None:
    config, models = _checkpoint(env, base)
    svc = env.service()
    for name, reference in models.items():
        with svc.load_model(config, name) as loaded:
            assert same_weights(loaded, reference), f"{base} {name} differs after conversion"


def test_sd1_checkpoint_pipeline_runs_two_steps(env) -> None:
    config, _ = _checkpoint(env, "sd-1")
    with env.service().load_model(config) as pipe:
        assert type(pipe).__name__ == "StableDiffusionPipeline"
        assert pipe.safety_checker is None
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)


def test_sdxl_inpaint_checkpoint_unet_has_nine_channels(env) -> None:
    config, _ = _checkpoint(env, "sdxl", variant="inpaint")
    with env.service().load_model(config, "unet") as unet:
        assert unet.config.in_channels == 9
        assert unet.config.cross_attention_dim == ldm.TEXT_HIDDEN["te1"] + ldm.TEXT_HIDDEN["te2"]


def test_sd2_depth_checkpoint_converts_and_the_depth_estimator_is_asked_for(env) -> None:
    config, _ = _checkpoint(env, "sd-2", variant="depth")
    svc = env.service()
    with svc.load_model(config, "unet") as unet:
        assert unet.config.in_channels == 5
    with pytest.raises(MissingLoadFilesError, match="no depth_estimator") as err:
        svc.load_model(config)
    assert "stabilityai/stable-diffusion-2-depth/depth_estimator" in str(err.value)


def test_pickled_ckpt_converts_too(env, same_weights) -> None:
    path = env.models_dir / "sd1.ckpt"
    models = ldm.write_tiny_main_checkpoint(path, "sd-1")
    ldm.write_tiny_config_folder(env.configs_dir / "sd-1", "sd-1")
    config = env.register(path, "main", "checkpoint", "sd-1")
    with env.service().load_model(config, "text_encoder") as te:
        assert same_weights(te, models["text_encoder"])


def test_conversion_is_cached_across_services_and_redone_on_change(env, convert_calls) -> None:
    config, _ = _checkpoint(env, "sd-2", prediction_type="epsilon")
    with env.service().load_model(config, "unet"):
        pass
    assert convert_calls == ["unet", "vae"]
    entries = list(env.settings.convert_cache_dir.iterdir())
    assert len(entries) == 1 and (entries[0] / ".complete").is_file()

    with env.service().load_model(config, "vae"):  # a new process-like service: the convert cache
        pass
    assert convert_calls == ["unet", "vae"]

    path = Path(config.path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # the source changed
    with env.service().load_model(config, "unet"):
        pass
    assert convert_calls == ["unet", "vae"] * 2
    assert len(list(env.settings.convert_cache_dir.iterdir())) == 1  # the stale conversion is gone

    env.store.update_model(config.key, {"prediction_type": "v_prediction"})
    ldm.write_tiny_config_folder(env.configs_dir / "sd-2-v", "sd-2")
    changed = env.store.get_model(config.key)
    svc = env.service()
    with svc.load_model(changed, "scheduler") as scheduler:
        assert scheduler.config.prediction_type == "v_prediction"
    assert convert_calls == ["unet", "vae"] * 3


def test_missing_tokenizer_is_a_clear_error_then_found_without_reconverting(env, convert_calls) -> None:
    config, _ = _checkpoint(env, "sdxl", tokenizers=False)
    svc = env.service()
    with svc.load_model(config, "unet") as unet:  # weights need no tokenizer
        assert unet.config.addition_embed_type == "text_time"
    for target in ("tokenizer_2", None):
        with pytest.raises(MissingLoadFilesError) as err:
            svc.load_model(config, target)
        message = str(err.value)
        assert "tokenizer" in message and str(env.configs_dir / "sdxl") in message
        assert "stabilityai/stable-diffusion-xl-base-1.0" in message and "Nothing is downloaded" in message
    from reconciler.testing.models import write_clip_tokenizer

    write_clip_tokenizer(env.configs_dir / "sdxl" / "tokenizer")
    write_clip_tokenizer(env.configs_dir / "sdxl" / "tokenizer_2")
    with env.service().load_model(config, "tokenizer_2") as tok:
        assert type(tok).__name__ == "CLIPTokenizer"
    with env.service().load_model(config) as pipe:
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)
    assert convert_calls == ["unet", "vae"]


def test_incomplete_checkpoint_is_refused(env) -> None:
    from safetensors.torch import load_file, save_file

    config, _ = _checkpoint(env, "sd-1")
    path = Path(config.path)
    state = load_file(str(path))
    dropped = [k for k in state if k.startswith("model.diffusion_model.output_blocks.1.")]
    save_file({k: v for k, v in state.items() if k not in dropped}, str(path))
    with pytest.raises(LoadError, match="unet is incomplete"):
        env.service().load_model(config, "unet")
    assert not any(p.name.endswith(".partial") for p in env.settings.convert_cache_dir.iterdir())


def test_probe_grade_checkpoint_is_refused_with_the_models_name(env) -> None:
    """reconciler.testing's write_main_checkpoint holds the deciding keys only: no loader can build
    a model from it, and the error says which model and why (never a random-weights model)."""
    from reconciler.testing.models import write_main_checkpoint

    path = write_main_checkpoint(env.models_dir / "probe-grade.safetensors", base="sd-1")
    ldm.write_tiny_config_folder(env.configs_dir / "sd-1", "sd-1")
    config = env.register(path, "main", "checkpoint", "sd-1")
    with pytest.raises(LoadError, match="probe-grade"):
        env.service().load_model(config, "unet")


def test_checkpoint_without_text_encoder_weights_loads_the_rest(env) -> None:
    from safetensors.torch import load_file, save_file

    config, _ = _checkpoint(env, "sd-1")
    path = Path(config.path)
    state = load_file(str(path))
    save_file({k: v for k, v in state.items() if not k.startswith("cond_stage_model.")}, str(path))
    svc = env.service()
    with svc.load_model(config, "vae"):
        pass
    with pytest.raises(MissingLoadFilesError, match="holds no text_encoder weights"):
        svc.load_model(config, "text_encoder")


def test_no_config_for_a_combination_says_where_to_put_one(env) -> None:
    path = env.models_dir / "depth.safetensors"
    ldm.write_tiny_main_checkpoint(path, "sd-1", "depth")
    depth = env.register(path, "main", "checkpoint", "sd-1", variant="depth")
    with pytest.raises(MissingLoadFilesError, match=r"sd-1-depth[/\\]model_index.json"):
        env.service().load_model(depth, "unet")


def test_vae_checkpoint_converts_and_decodes(env, same_weights, convert_calls) -> None:
    import torch

    path = env.models_dir / "vae.safetensors"
    reference = ldm.write_tiny_vae_checkpoint(path, "sd-1")
    ldm.write_tiny_config_folder(env.configs_dir / "sd-1", "sd-1")
    config = env.register(path, "vae", "checkpoint", "sd-1")
    with env.service().load_model(config) as vae:
        assert same_weights(vae, reference)
        assert vae.decode(torch.randn(1, 4, 4, 4)).sample.shape == (1, 3, 8, 8)
    with env.service().load_model(config):
        pass
    assert convert_calls == ["vae"]


def test_controlnet_checkpoint_converts(env, same_weights) -> None:
    import shutil

    from diffusers import ControlNetModel

    from reconciler.testing.models import write_controlnet_diffusers

    folder = write_controlnet_diffusers(env.root / "cn-src", base="sd-1")
    path = env.models_dir / "cn.safetensors"
    shutil.copy(folder / "diffusion_pytorch_model.safetensors", path)  # a diffusers-keyed single file
    (env.configs_dir / "controlnet-sd-1").mkdir()
    shutil.copy(folder / "config.json", env.configs_dir / "controlnet-sd-1" / "config.json")
    config = env.register(path, "controlnet", "checkpoint", "sd-1")
    with env.service().load_model(config) as cn:
        assert same_weights(cn, ControlNetModel.from_pretrained(folder))


def test_tokenizers_from_the_offline_hf_cache(env, offline: Path, tmp_path: Path) -> None:
    """A tokenizer cached by an earlier download of the model's repo is used (read, not fetched)."""
    from reconciler.testing.models import write_clip_tokenizer
    from tests.load.conftest import seed_hf_cache

    config, _ = _checkpoint(env, "sdxl", tokenizers=False)
    write_clip_tokenizer(tmp_path / "tok")
    files = {p.name: p.read_bytes() for p in (tmp_path / "tok").iterdir()}
    seed_hf_cache(offline, "stabilityai/stable-diffusion-xl-base-1.0",
                  {f"{sub}/{name}": data for sub in ("tokenizer", "tokenizer_2") for name, data in files.items()})
    with env.service().load_model(config) as pipe:
        assert len(pipe.tokenizer_2) == 2 + 2 * 256
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)


def test_an_fp16_checkpoint_converts_to_fp16_files_and_loads_in_the_devices_precision(env) -> None:
    import json

    import torch

    path = env.models_dir / "half.safetensors"
    ldm.write_tiny_main_checkpoint(path, "sd-1", dtype=torch.float16)
    ldm.write_tiny_config_folder(env.configs_dir / "sd-1", "sd-1")
    config = env.register(path, "main", "checkpoint", "sd-1")
    with env.service().load_model(config, "unet") as unet:
        assert unet.dtype == torch.float32  # CPU
    (converted,) = env.settings.convert_cache_dir.iterdir()
    note = json.loads((converted / "reconciler_conversion.json").read_text())
    assert note["dtype"] == "float16" and note["converted"] == ["unet", "vae", "text_encoder"]
    assert (converted / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < path.stat().st_size
