"""LoRA / LyCORIS / textual inversion / IP-Adapter as state dicts; the service's error contract;
the registry's coverage; a CUDA round trip where a GPU is present."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.errors import (
    LoadError,
    ModelNotFoundException,
    NotImplementedException,
    UnknownModelException,
)
from reconciler.testing import models as m


def _tensors(state: dict) -> list:
    out = []
    for value in state.values():
        out.extend(_tensors(value) if isinstance(value, dict) else [value])
    return out


@pytest.mark.parametrize("kind", ["kohya", "loha", "lokr", "diffusers_folder"])
def test_lora_loads_as_a_state_dict(env, kind: str) -> None:
    import torch

    if kind == "kohya":
        path, fmt = m.write_lora_kohya(env.models_dir / "l.safetensors", base="sdxl"), "lycoris"
    elif kind in ("loha", "lokr"):
        path, fmt = m.write_lora_lycoris(env.models_dir / "l.safetensors", base="sd-1", algo=kind), "lycoris"
    else:
        path, fmt = m.write_lora_diffusers_folder(env.models_dir / "lora-folder", base="sd-2"), "diffusers"
    config = env.register(path, "lora", fmt, "sd-1")
    with env.service().load_model(config) as state:
        assert isinstance(state, dict) and state
        assert all(t.dtype == torch.float32 for t in _tensors(state) if t.is_floating_point())  # fp16 files, CPU fp32
    if kind == "kohya":
        assert "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in state


def test_pickled_lora_loads_and_a_code_carrying_pickle_is_refused(env, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    source = m.write_lora_kohya(tmp_path / "src.safetensors")
    pt = env.models_dir / "lora.pt"
    torch.save(load_file(str(source)), str(pt))
    config = env.register(pt, "lora", "lycoris", "sd-1")
    with env.service().load_model(config) as state:
        assert set(state) == set(load_file(str(source)))

    marker = tmp_path / "pwned"
    bad = m.write_malicious_pickle(env.models_dir / "evil.ckpt", marker)
    config = env.register(bad, "lora", "lycoris", "sd-1")
    with pytest.raises(LoadError):
        env.service().load_model(config)
    assert not marker.exists()


@pytest.mark.parametrize("form", ["emb_params", "string_to_param", "sdxl", "folder"])
def test_textual_inversion_loads_as_a_state_dict(env, form: str) -> None:
    if form == "folder":
        path, fmt = m.write_textual_inversion_folder(env.models_dir / "ti"), "embedding_folder"
    elif form == "sdxl":
        path, fmt = m.write_textual_inversion(env.models_dir / "ti.safetensors", base="sdxl"), "embedding_file"
    else:
        path, fmt = m.write_textual_inversion(env.models_dir / "ti.safetensors", form=form), "embedding_file"
    config = env.register(path, "embedding", fmt, "sdxl" if form == "sdxl" else "sd-1")
    with env.service().load_model(config) as state:
        expected = {"emb_params": {"emb_params"}, "string_to_param": {"string_to_param.*"},
                    "sdxl": {"clip_l", "clip_g"}, "folder": {"<tiny-token>"}}[form]
        assert set(state) == expected


@pytest.mark.parametrize("layout", ["checkpoint", "invokeai"])
def test_ip_adapter_loads_as_its_two_state_dicts(env, layout: str) -> None:
    if layout == "checkpoint":
        path = m.write_ip_adapter_checkpoint(env.models_dir / "ip.safetensors", base="sd-1")
    else:
        path = m.write_ip_adapter_folder(env.models_dir / "ip-folder", base="sdxl")
    config = env.register(path, "ip_adapter", layout, "sd-1" if layout == "checkpoint" else "sdxl")
    with env.service().load_model(config) as state:
        assert set(state) == {"image_proj", "ip_adapter"}
        assert "proj.weight" in state["image_proj"]
        width = 768 if layout == "checkpoint" else 2048
        assert state["ip_adapter"]["1.to_k_ip.weight"].shape[-1] == width


def test_nested_ip_adapter_pickle_loads(env, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    flat = load_file(str(m.write_ip_adapter_checkpoint(tmp_path / "ip.safetensors")))
    nested = {part: {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith(part + ".")}
              for part in ("image_proj", "ip_adapter")}
    folder = env.models_dir / "ip-bin"
    folder.mkdir()
    torch.save(nested, str(folder / "ip_adapter.bin"))
    (folder / "image_encoder.txt").write_text("InvokeAI/ip_adapter_sd_image_encoder\n")
    config = env.register(folder, "ip_adapter", "invokeai", "sd-1")
    with env.service().load_model(config) as state:
        assert state["ip_adapter"].keys() == nested["ip_adapter"].keys()


def test_the_offline_fixture_refuses_tcp(offline: Path) -> None:
    import os
    import socket

    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_files_gone_is_model_not_found(env) -> None:
    folder = m.write_diffusers_pipeline(env.models_dir / "gone", base="sd-1")
    pipeline = env.register(folder, "main", "diffusers", "sd-1")
    lora = env.register(m.write_lora_kohya(env.models_dir / "gone.safetensors"), "lora", "lycoris", "sd-1")
    shutil.rmtree(folder)
    Path(lora.path).unlink()
    svc = env.service()
    with pytest.raises(ModelNotFoundException, match="gone"):
        svc.get_model_by_key(pipeline.key, "unet")
    with pytest.raises(ModelNotFoundException):
        svc.get_model_by_key(lora.key)
    with pytest.raises(UnknownModelException):
        svc.get_model_by_key("0" * 32)


def test_unsupported_combination_is_not_implemented(env) -> None:
    onnx = env.register(m.write_onnx_pipeline(env.models_dir / "onnx", base="sd-1"), "onnx", "onnx", "sd-1")
    with pytest.raises(NotImplementedException, match="onnx"):
        env.service().load_model(onnx)


def test_every_loadable_kind_has_a_loader() -> None:
    from reconciler.load.registry import ModelLoaderRegistry
    from reconciler.taxonomy import BaseModelType as B
    from reconciler.taxonomy import ModelFormat as F
    from reconciler.taxonomy import ModelType as T

    table = ModelLoaderRegistry.registrations()
    mains = [B.StableDiffusion1, B.StableDiffusion2, B.StableDiffusionXL, B.StableDiffusionXLRefiner]
    wanted = [(b, T.Main, f) for b in mains for f in (F.Diffusers, F.Checkpoint)]
    wanted += [(b, T.Vae, F.Checkpoint) for b in mains]
    wanted += [(b, T.ControlNet, F.Checkpoint) for b in mains[:3]]
    wanted += [(B.Any, t, F.Diffusers) for t in (T.Vae, T.ControlNet, T.T2IAdapter, T.CLIPVision, T.LoRA)]
    wanted += [(B.Any, T.LoRA, F.LyCORIS), (B.Any, T.TextualInversion, F.EmbeddingFile),
               (B.Any, T.TextualInversion, F.EmbeddingFolder), (B.Any, T.IPAdapter, F.Checkpoint),
               (B.Any, T.IPAdapter, F.InvokeAI)]
    assert [key for key in wanted if key not in table] == []
    assert not any(key[1] is T.ONNX for key in table)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA device")
def test_cuda_loads_in_fp16_and_runs_on_the_gpu(env) -> None:
    import torch

    folder = m.write_diffusers_pipeline(env.models_dir / "gpu", base="sd-1")
    config = env.register(folder, "main", "diffusers", "sd-1")
    svc = env.service(device="cuda")
    loaded = svc.load_model(config, "unet")
    with loaded as unet:
        assert unet.device.type == "cuda" and unet.dtype == torch.float16
        out = unet(torch.randn(1, 4, 8, 8, device="cuda", dtype=torch.float16), 10,
                   encoder_hidden_states=torch.randn(1, 3, 16, device="cuda", dtype=torch.float16)).sample
        assert out.shape == (1, 4, 8, 8)
    with svc.load_model(config) as pipe:
        images = pipe("a cat", num_inference_steps=2, height=32, width=32, output_type="np").images
    assert images.shape == (1, 32, 32, 3)
