"""Tiny but complete single-file checkpoints in the original (LDM / SGM) layout, for loader tests.

``reconciler.testing.models.write_main_checkpoint`` writes *probe-grade* checkpoints: the key
names and deciding shapes of the real files, but only a handful of tensors, so no loader can
build a model from them.  The loader's single-file path needs every weight, so this module
builds tiny diffusers models (UNet, VAE, CLIP text encoders) with torch, and writes their state
dicts under the original checkpoints' key names: the inverse of diffusers'
``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` / ``convert_ldm_clip_checkpoint``
/ ``convert_open_clip_checkpoint``.  With it comes a matching tiny diffusers config folder (what
``load_configs_dir`` points at), tokenizers included.

torch, diffusers and transformers are imported inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.testing.models import pipeline_class_name, write_clip_tokenizer

TEXT_HIDDEN = {"te1": 16, "te2": 24}  # distinct widths: diffusers tells SDXL's two encoders apart by width
PROJECTION = 8
TIME_EMBED = 4
_IN_CHANNELS = {"normal": 4, "inpaint": 9, "depth": 5}


def config_name(base: str, variant: str = "normal", prediction: str = "epsilon") -> str:
    """The configs folder name the loader looks up (reconciler.load.model_loaders.single_file)."""
    from reconciler.load.model_loaders.configs import config_folder_name
    from reconciler.taxonomy import BaseModelType, ModelVariantType, SchedulerPredictionType

    return config_folder_name(BaseModelType(base), ModelVariantType(variant), SchedulerPredictionType(prediction))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def tiny_configs(base: str, variant: str = "normal") -> dict[str, dict[str, Any]]:
    """The diffusers/transformers configs of a tiny pipeline of ``base`` (component -> config)."""
    sdxl = base in ("sdxl", "sdxl-refiner")
    if base == "sdxl":
        ctx = TEXT_HIDDEN["te1"] + TEXT_HIDDEN["te2"]
    elif base == "sdxl-refiner":
        ctx = TEXT_HIDDEN["te2"]
    else:
        ctx = TEXT_HIDDEN["te1"]
    unet: dict[str, Any] = {
        "_class_name": "UNet2DConditionModel",
        "sample_size": 8,
        "in_channels": _IN_CHANNELS[variant],
        "out_channels": 4,
        "block_out_channels": [8, 16],
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "attention_head_dim": 2,
        "cross_attention_dim": ctx,
        "use_linear_projection": base != "sd-1",
    }
    if sdxl:
        time_ids = 6 if base == "sdxl" else 5
        unet.update({"addition_embed_type": "text_time", "addition_time_embed_dim": TIME_EMBED,
                     "projection_class_embeddings_input_dim": time_ids * TIME_EMBED + PROJECTION})
    vae = {
        "_class_name": "AutoencoderKL",
        "in_channels": 3, "out_channels": 3, "latent_channels": 4,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "block_out_channels": [8, 8], "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 16,
        "scaling_factor": 0.13025 if sdxl else 0.18215,
    }

    def text_encoder(which: str, projection: bool) -> dict[str, Any]:
        return {
            "architectures": ["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
            "model_type": "clip_text_model",
            "hidden_size": TEXT_HIDDEN[which], "intermediate_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 77, "vocab_size": 2 + 2 * 256,
            "projection_dim": PROJECTION, "hidden_act": "quick_gelu" if which == "te1" else "gelu",
            "layer_norm_eps": 1e-05, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
        }

    scheduler = {"_class_name": "EulerDiscreteScheduler" if sdxl else "DDIMScheduler",
                 "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                 "num_train_timesteps": 1000, "steps_offset": 1, "prediction_type": "epsilon", "clip_sample": False, "set_alpha_to_one": False}
    index: dict[str, Any] = {"_class_name": pipeline_class_name(base, variant), "scheduler": ["diffusers", scheduler["_class_name"]],
                             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    out: dict[str, dict[str, Any]] = {"unet": unet, "vae": vae, "scheduler": scheduler}
    if base != "sdxl-refiner":
        out["text_encoder"] = text_encoder("te1", projection=False)
        index["text_encoder"] = ["transformers", "CLIPTextModel"]
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    else:
        index["text_encoder"] = [None, None]
        index["tokenizer"] = [None, None]
    if sdxl:
        out["text_encoder_2"] = text_encoder("te2", projection=True)
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
        index["force_zeros_for_empty_prompt"] = base == "sdxl"
        if base == "sdxl-refiner":
            index["requires_aesthetics_score"] = True
    elif variant == "depth":  # as the shipped sd-2-depth: a depth estimator no checkpoint holds
        index["depth_estimator"] = ["transformers", "DPTForDepthEstimation"]
        index["feature_extractor"] = ["transformers", "DPTImageProcessor"]
    else:
        index["safety_checker"] = [None, None]
        index["feature_extractor"] = [None, None]
        index["requires_safety_checker"] = False
    out["model_index"] = index
    return out


def write_tiny_config_folder(folder: Path, base: str, variant: str = "normal", tokenizers: bool = True) -> Path:
    """A diffusers config folder for the tiny models (no weights): what ``load_configs_dir/<name>`` holds."""
    configs = tiny_configs(base, variant)
    _write_json(folder / "model_index.json", configs["model_index"])
    _write_json(folder / "scheduler" / "scheduler_config.json", configs["scheduler"])
    for comp in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if comp in configs:
            _write_json(folder / comp / "config.json", configs[comp])
    if tokenizers:
        for comp, tok in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
            if comp in configs:
                write_clip_tokenizer(folder / tok)
    return folder


def tiny_models(base: str, variant: str = "normal", seed: int = 0) -> dict[str, Any]:
    """Tiny diffusers/transformers models with random weights (component -> module)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    configs = tiny_configs(base, variant)
    torch.manual_seed(seed)
    models: dict[str, Any] = {
        "unet": UNet2DConditionModel.from_config(configs["unet"]),
        "vae": AutoencoderKL.from_config(configs["vae"]),
    }
    if "text_encoder" in configs:
        models["text_encoder"] = CLIPTextModel(CLIPTextConfig(**_clip_kwargs(configs["text_encoder"])))
    if "text_encoder_2" in configs:
        models["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**_clip_kwargs(configs["text_encoder_2"])))
    with torch.no_grad():  # random, not the init's zeros: a weight that is not carried over shows
        for model in models.values():
            for p in model.parameters():
                p.copy_(torch.randn_like(p) * 0.05)
    for model in models.values():
        model.eval()
    return models


def _clip_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in ("architectures", "model_type")}


# --- diffusers -> LDM key names ------------------------------------------------------------------

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _resnet_key(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def unet_to_ldm(state: dict[str, Any], config: dict[str, Any], prefix: str = "model.diffusion_model.") -> dict[str, Any]:
    """A diffusers UNet state dict under the LDM UNet's key names."""
    lpb = config["layers_per_block"]
    n_blocks = len(config["block_out_channels"])
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        module = next((m for m in fixed if key.startswith(m + ".")), None)
        if module is not None:
            new = fixed[module] + key[len(module):]
        elif parts[0] == "down_blocks":
            b, kind, j = int(parts[1]), parts[2], parts[3]
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = f"input_blocks.{1 + b * (lpb + 1) + int(j)}.0.{_resnet_key(rest)}"
            elif kind == "attentions":
                new = f"input_blocks.{1 + b * (lpb + 1) + int(j)}.1.{rest}"
            else:  # downsamplers.0.conv.*
                new = f"input_blocks.{1 + b * (lpb + 1) + lpb}.0.op.{'.'.join(parts[5:])}"
        elif parts[0] == "mid_block":
            kind, j, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            new = f"middle_block.{0 if j == 0 else 2}.{_resnet_key(rest)}" if kind == "resnets" \
                else f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            b, kind, j = int(parts[1]), parts[2], parts[3]
            rest = ".".join(parts[4:])
            has_attn = config["up_block_types"][b].startswith("CrossAttn")
            if kind == "resnets":
                new = f"output_blocks.{b * (lpb + 1) + int(j)}.0.{_resnet_key(rest)}"
            elif kind == "attentions":
                new = f"output_blocks.{b * (lpb + 1) + int(j)}.1.{rest}"
            else:  # upsamplers.0.conv.*
                slot = 2 if has_attn else 1
                new = f"output_blocks.{b * (lpb + 1) + lpb}.{slot}.conv.{'.'.join(parts[5:])}"
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
        out[prefix + new] = value
    assert n_blocks  # the block count is implicit in the names
    return out


def vae_to_ldm(state: dict[str, Any], config: dict[str, Any], prefix: str = "first_stage_model.") -> dict[str, Any]:
    """A diffusers AutoencoderKL state dict under the LDM VAE's key names."""
    n_up = len(config["up_block_types"])
    simple = {"conv_norm_out": "norm_out"}
    out: dict[str, Any] = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]
        if side in ("quant_conv", "post_quant_conv"):
            new = key
        elif parts[1] in ("conv_in", "conv_out"):
            new = key
        elif parts[1] in simple:
            new = f"{side}.{simple[parts[1]]}.{'.'.join(parts[2:])}"
        elif parts[1] == "down_blocks":
            i, kind = parts[2], parts[3]
            if kind == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{side}.down.{i}.block.{parts[4]}.{rest}"
            else:
                new = f"{side}.down.{i}.downsample.conv.{'.'.join(parts[6:])}"
        elif parts[1] == "up_blocks":
            i, kind = int(parts[2]), parts[3]
            block = n_up - 1 - i
            if kind == "resnets":
                rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                new = f"{side}.up.{block}.block.{parts[4]}.{rest}"
            else:
                new = f"{side}.up.{block}.upsample.conv.{'.'.join(parts[6:])}"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                new = f"{side}.mid.block_{int(parts[3]) + 1}.{'.'.join(parts[4:])}"
            else:
                rest = ".".join(parts[4:])
                rest = (rest.replace("group_norm", "norm").replace("to_q", "q").replace("to_k", "k")
                        .replace("to_v", "v").replace("to_out.0", "proj_out"))
                new = f"{side}.mid.attn_1.{rest}"
                if value.ndim == 2:
                    value = value[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE key {key}")
        out[prefix + new] = value
    return out


def clip_to_ldm(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A transformers CLIPTextModel state dict under an LDM ``...transformer.`` prefix (HF CLIP layout)."""
    out = {}
    for key, value in state.items():
        if not key.startswith("text_model."):
            key = "text_model." + key
        out[prefix + key] = value
    return out


def open_clip_to_ldm(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A transformers CLIP text model's state dict in OpenCLIP's layout (``model.`` keys of SD 2 / SDXL)."""
    import torch

    flat = {k.removeprefix("text_model."): v for k, v in state.items()}
    out: dict[str, Any] = {
        prefix + "token_embedding.weight": flat.pop("embeddings.token_embedding.weight"),
        prefix + "positional_embedding": flat.pop("embeddings.position_embedding.weight"),
        prefix + "ln_final.weight": flat.pop("final_layer_norm.weight"),
        prefix + "ln_final.bias": flat.pop("final_layer_norm.bias"),
    }
    if "text_projection.weight" in flat:
        out[prefix + "text_projection"] = flat.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in flat if k.startswith("encoder.layers.")})
    for i in layers:
        src = f"encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                [flat.pop(f"{src}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")])
            out[f"{dst}attn.out_proj.{kind}"] = flat.pop(f"{src}self_attn.out_proj.{kind}")
            out[f"{dst}ln_1.{kind}"] = flat.pop(f"{src}layer_norm1.{kind}")
            out[f"{dst}ln_2.{kind}"] = flat.pop(f"{src}layer_norm2.{kind}")
            out[f"{dst}mlp.c_fc.{kind}"] = flat.pop(f"{src}mlp.fc1.{kind}")
            out[f"{dst}mlp.c_proj.{kind}"] = flat.pop(f"{src}mlp.fc2.{kind}")
    flat.pop("embeddings.position_ids", None)
    assert not flat, f"OpenCLIP layout has no place for {sorted(flat)}"
    return out


def ldm_state_dict(models: dict[str, Any], base: str, variant: str = "normal",
                   configs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole pipeline as one original-layout state dict (``configs``: the unet and vae
    configs the models were built from; the tiny ones by default)."""
    configs = configs or tiny_configs(base, variant)
    sd: dict[str, Any] = {}
    sd.update(unet_to_ldm(models["unet"].state_dict(), configs["unet"]))
    sd.update(vae_to_ldm(models["vae"].state_dict(), configs["vae"]))
    if base == "sd-1":
        sd.update(clip_to_ldm(models["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    elif base == "sd-2":
        sd.update(open_clip_to_ldm(models["text_encoder"].state_dict(), "cond_stage_model.model."))
    elif base == "sdxl":
        sd.update(clip_to_ldm(models["text_encoder"].state_dict(), "conditioner.embedders.0.transformer."))
        sd.update(open_clip_to_ldm(models["text_encoder_2"].state_dict(), "conditioner.embedders.1.model."))
    else:
        sd.update(open_clip_to_ldm(models["text_encoder_2"].state_dict(), "conditioner.embedders.0.model."))
    return {k: v.detach().contiguous() for k, v in sd.items()}


def write_tiny_main_checkpoint(path: Path, base: str = "sd-1", variant: str = "normal", seed: int = 0,
                               dtype: Any = None) -> dict[str, Any]:
    """Write a complete tiny main checkpoint (LDM / SGM layout) to ``path``; returns its diffusers models."""
    from safetensors.torch import save_file

    models = tiny_models(base, variant, seed)
    sd = ldm_state_dict(models, base, variant)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        import torch

        torch.save({"state_dict": sd, "global_step": 1}, str(path))
    return models


def write_tiny_vae_checkpoint(path: Path, base: str = "sd-1", seed: int = 3) -> Any:
    """A complete tiny standalone VAE checkpoint (LDM VAE keys, no prefix); returns the diffusers VAE."""
    from safetensors.torch import save_file

    models = tiny_models(base, "normal", seed)
    vae = models["vae"]
    sd = vae_to_ldm(vae.state_dict(), tiny_configs(base)["vae"], prefix="")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in sd.items()}, str(path))
    return vae


__all__ = ["config_name", "tiny_configs", "tiny_models", "write_tiny_config_folder", "write_tiny_main_checkpoint",
           "write_tiny_vae_checkpoint", "ldm_state_dict", "unet_to_ldm", "vae_to_ldm"]
