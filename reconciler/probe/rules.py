"""The probe rules: what a state dict's key names and shapes, or a folder's files, say a model is.

The rules follow InvokeAI's Model Manager V2 prober (``invokeai/backend/model_manager/probe.py``)
and keep its values, with these deliberate differences:

* a diffusers-keyed ControlNet file is told apart by its cross-attention width, not by
  ``controlnet_mid_block.bias`` (that is the channel count, 1280 for every base);
* a LoRA's base comes from the UNet's cross-attention width first, then from the text
  encoders, and only then from ``time_emb_proj`` (1280 wide in sd-1 as well as sdxl);
* sd-2 inpaint and depth checkpoints are epsilon models (the 768-v guess is for normal ones);
* a T2I adapter of an unknown ``adapter_type`` is refused instead of taken for sd-1;
* a standalone VAE file is sdxl when its model-spec metadata or its name says so.

Rules return a :class:`Detection`; a field a rule cannot decide is listed in
``Detection.unknown`` with the reason, so that a manifest that sets it still succeeds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import InvalidModelError
from reconciler.taxonomy import (
    BaseModelType,
    ModelFormat,
    ModelRepoVariant,
    ModelType,
    ModelVariantType,
    SchedulerPredictionType,
)

__all__ = [
    "Detection",
    "ModelNotRecognizedError",
    "StateDictInfo",
    "classify_state_dict",
    "classify_folder",
    "cannot_tell",
]

Shapes = Mapping[str, tuple[int, ...]]


class ModelNotRecognizedError(InvalidModelError):
    """The files are readable but match no rule: the manifest must say what they are."""


def cannot_tell(path: Path, reason: str = "") -> ModelNotRecognizedError:
    """The standard "cannot tell the type" error for ``path``."""
    msg = f"cannot tell the type of {path}; set `type` and `base` in the manifest"
    return ModelNotRecognizedError(msg + (f" ({reason})" if reason else ""))


@dataclass
class StateDictInfo:
    """What a checkpoint file holds, as far as probing needs: shapes, metadata, scalars."""

    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)
    scalars: dict[str, Any] = field(default_factory=dict)


@dataclass
class Detection:
    """A rule's verdict: type and format always; base and other fields where decidable."""

    type: ModelType
    format: ModelFormat
    fields: dict[str, Any] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # field -> why it could not be told
    notes: list[str] = field(default_factory=list)

    def set_base(self, base: BaseModelType | None, why_not: str) -> None:
        if base is None:
            self.unknown["base"] = why_not
        else:
            self.fields["base"] = base


# --------------------------------------------------------------------------------------
# widths
# --------------------------------------------------------------------------------------

_BASE_BY_CROSS_ATTENTION = {
    768: BaseModelType.StableDiffusion1,
    1024: BaseModelType.StableDiffusion2,
    2048: BaseModelType.StableDiffusionXL,
    1280: BaseModelType.StableDiffusionXLRefiner,
}
_BASE_BY_TOKEN_WIDTH = {
    768: BaseModelType.StableDiffusion1,
    1024: BaseModelType.StableDiffusion2,
    1280: BaseModelType.StableDiffusionXL,
    2048: BaseModelType.StableDiffusionXL,
}
_VARIANT_BY_IN_CHANNELS = {4: ModelVariantType.Normal, 9: ModelVariantType.Inpaint, 5: ModelVariantType.Depth}

_LEGACY_CONFIGS: dict[tuple[BaseModelType, ModelVariantType, SchedulerPredictionType | None], str] = {
    (BaseModelType.StableDiffusion1, ModelVariantType.Normal, SchedulerPredictionType.Epsilon): "v1-inference.yaml",
    (BaseModelType.StableDiffusion1, ModelVariantType.Normal, SchedulerPredictionType.VPrediction):
        "v1-inference-v.yaml",
    (BaseModelType.StableDiffusion1, ModelVariantType.Inpaint, None): "v1-inpainting-inference.yaml",
    (BaseModelType.StableDiffusion2, ModelVariantType.Normal, SchedulerPredictionType.Epsilon): "v2-inference.yaml",
    (BaseModelType.StableDiffusion2, ModelVariantType.Normal, SchedulerPredictionType.VPrediction):
        "v2-inference-v.yaml",
    (BaseModelType.StableDiffusion2, ModelVariantType.Inpaint, SchedulerPredictionType.Epsilon):
        "v2-inpainting-inference.yaml",
    (BaseModelType.StableDiffusion2, ModelVariantType.Inpaint, SchedulerPredictionType.VPrediction):
        "v2-inpainting-inference-v.yaml",
    (BaseModelType.StableDiffusion2, ModelVariantType.Depth, None): "v2-midas-inference.yaml",
    (BaseModelType.StableDiffusionXL, ModelVariantType.Normal, None): "sd_xl_base.yaml",
    (BaseModelType.StableDiffusionXL, ModelVariantType.Inpaint, None): "sd_xl_inpaint.yaml",
    (BaseModelType.StableDiffusionXLRefiner, ModelVariantType.Normal, None): "sd_xl_refiner.yaml",
}


def legacy_config_path(path: Path, type_: ModelType, base: BaseModelType | None,
                       variant: ModelVariantType | None = None,
                       prediction: SchedulerPredictionType | None = None) -> str | None:
    """The original-repo YAML config a checkpoint needs (InvokeAI's LEGACY_CONFIGS).

    A ``<name>.yaml`` next to the checkpoint wins; otherwise a path relative to the
    configs folder, or None when there is no standard one.
    """
    beside = path.with_suffix(".yaml")
    if beside.is_file():
        return str(beside.absolute())
    if base is None:
        return None
    if type_ is ModelType.Main:
        variant = variant or ModelVariantType.Normal
        name = _LEGACY_CONFIGS.get((base, variant, prediction)) or _LEGACY_CONFIGS.get((base, variant, None))
        return f"stable-diffusion/{name}" if name else None
    if type_ is ModelType.ControlNet:
        return {BaseModelType.StableDiffusion1: "controlnet/cldm_v15.yaml",
                BaseModelType.StableDiffusion2: "controlnet/cldm_v21.yaml"}.get(base)
    if type_ is ModelType.Vae:
        return {BaseModelType.StableDiffusion1: "stable-diffusion/v1-inference.yaml",
                BaseModelType.StableDiffusion2: "stable-diffusion/v2-inference.yaml",
                BaseModelType.StableDiffusionXL: "stable-diffusion/sd_xl_base.yaml"}.get(base)
    return None


# --------------------------------------------------------------------------------------
# checkpoints (one file)
# --------------------------------------------------------------------------------------

_MAIN_PREFIXES = ("model.diffusion_model.", "cond_stage_model.", "first_stage_model.", "conditioner.embedders.")
_VAE_PREFIXES = ("encoder.conv_in", "decoder.conv_in")
_KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
_DIFFUSERS_LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.", ".lora_linear_layer.",
                           "_lora.down.", "_lora.up.")
_CONTROLNET_PREFIXES = ("control_model.", "controlnet", "input_blocks.", "zero_convs.")
_IP_ADAPTER_PREFIXES = ("image_proj.", "ip_adapter.")
_SDXL_NAME = re.compile(r"xl(\b|_)", re.IGNORECASE)
_CROSS_ATTN_KEY = re.compile(r"attn2[._](processor[._])?to_[kv]")


def _any_prefix(keys: list[str], prefixes: tuple[str, ...]) -> bool:
    return any(k.startswith(prefixes) for k in keys)


def _strip_state_dict(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    """Lightning checkpoints nest the weights under ``state_dict``; lift them out."""
    if any(k.startswith("state_dict.") for k in shapes):
        return {k.removeprefix("state_dict."): v for k, v in shapes.items()}
    return dict(shapes)


def classify_state_dict(info: StateDictInfo, path: Path) -> Detection:
    """Type, format, base and the class-specific fields of a single-file model.

    Raises ModelNotRecognizedError when no rule matches.
    """
    shapes = _strip_state_dict(info.shapes)
    keys = list(shapes)
    if not keys:
        raise cannot_tell(path, "it holds no tensors")
    if _any_prefix(keys, _MAIN_PREFIXES):
        return _main_checkpoint(shapes, info, path)
    if _any_prefix(keys, _VAE_PREFIXES):
        det = Detection(ModelType.Vae, ModelFormat.Checkpoint)
        arch = info.metadata.get("modelspec.architecture", "")
        xl = "xl" in arch.lower() or bool(_SDXL_NAME.search(path.stem))
        det.set_base(BaseModelType.StableDiffusionXL if xl else BaseModelType.StableDiffusion1, "")
        det.fields["config"] = legacy_config_path(path, det.type, det.fields["base"])
        return det
    if _any_prefix(keys, _KOHYA_PREFIXES) or any(m in k for k in keys for m in _DIFFUSERS_LORA_MARKERS):
        det = Detection(ModelType.LoRA, ModelFormat.LyCORIS)
        width = lora_token_width(shapes)
        det.set_base(_BASE_BY_TOKEN_WIDTH.get(width) if width else None,
                     f"LoRA token width {width}" if width else "no layer shows the token width")
        return det
    if _any_prefix(keys, _CONTROLNET_PREFIXES):
        return _controlnet_checkpoint(shapes, path)
    if _any_prefix(keys, _IP_ADAPTER_PREFIXES):
        det = Detection(ModelType.IPAdapter, ModelFormat.Checkpoint)
        det.set_base(*_ip_adapter_base(shapes))
        return det
    ti = _textual_inversion_width(shapes)
    if ti is not None:
        det = Detection(ModelType.TextualInversion, ModelFormat.EmbeddingFile)
        base = {768: BaseModelType.StableDiffusion1, 1024: BaseModelType.StableDiffusion2,
                1280: BaseModelType.StableDiffusionXL}.get(ti)
        det.set_base(base, f"embedding width {ti}")
        return det
    raise cannot_tell(path, f"{len(keys)} tensors, none with the key names of a known kind (first: {keys[0]!r})")


def _main_checkpoint(shapes: dict[str, tuple[int, ...]], info: StateDictInfo, path: Path) -> Detection:
    det = Detection(ModelType.Main, ModelFormat.Checkpoint)
    unet = "model.diffusion_model.input_blocks"
    base: BaseModelType | None = None
    k2 = shapes.get(f"{unet}.2.1.transformer_blocks.0.attn2.to_k.weight")
    k4 = shapes.get(f"{unet}.4.1.transformer_blocks.0.attn2.to_k.weight")
    if k2 is not None and k2[-1] in (768, 1024):
        base = _BASE_BY_CROSS_ATTENTION[k2[-1]]
    elif k4 is not None and k4[-1] in (2048, 1280):
        base = _BASE_BY_CROSS_ATTENTION[k4[-1]]
    elif k2 is None and k4 is None:
        keys = list(shapes)
        if _any_prefix(keys, ("conditioner.embedders.1.",)):
            base = BaseModelType.StableDiffusionXL
        elif _any_prefix(keys, ("conditioner.embedders.0.model.",)):
            base = BaseModelType.StableDiffusionXLRefiner
        elif _any_prefix(keys, ("cond_stage_model.model.",)):
            base = BaseModelType.StableDiffusion2
        elif _any_prefix(keys, ("cond_stage_model.transformer.",)):
            base = BaseModelType.StableDiffusion1
    width = (k2 or k4 or (None,))[-1]
    det.set_base(base, f"cross-attention width {width}" if width else "no UNet cross-attention or text encoder keys")

    variant: ModelVariantType | None = ModelVariantType.Normal
    conv_in = shapes.get(f"{unet}.0.0.weight")
    if conv_in is not None and len(conv_in) == 4:
        variant = _VARIANT_BY_IN_CHANNELS.get(conv_in[1])
        if variant is None:
            det.unknown["variant"] = f"UNet in_channels {conv_in[1]}"
    if variant is not None:
        det.fields["variant"] = variant

    prediction = SchedulerPredictionType.Epsilon
    if base is BaseModelType.StableDiffusion2:
        step = info.scalars.get("global_step")
        if step == 220000:
            prediction = SchedulerPredictionType.Epsilon
        elif step == 110000 or variant is ModelVariantType.Normal:
            prediction = SchedulerPredictionType.VPrediction  # the 768-v models; a guess otherwise
    det.fields["prediction_type"] = prediction
    det.fields["upcast_attention"] = (base is BaseModelType.StableDiffusion2
                                      and prediction is SchedulerPredictionType.VPrediction)
    det.fields["config"] = legacy_config_path(path, ModelType.Main, base, variant, prediction)
    return det


def _controlnet_checkpoint(shapes: Shapes, path: Path) -> Detection:
    det = Detection(ModelType.ControlNet, ModelFormat.Checkpoint)
    width = None
    for key in ("control_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
                "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"):
        if key in shapes:
            width = shapes[key][-1]
            break
    base = {768: BaseModelType.StableDiffusion1, 1024: BaseModelType.StableDiffusion2,
            2048: BaseModelType.StableDiffusionXL, 1280: BaseModelType.StableDiffusionXL}.get(width or 0)
    det.set_base(base, f"cross-attention width {width}" if width else "no cross-attention layer found")
    det.fields["config"] = legacy_config_path(path, det.type, base)
    return det


def _ip_adapter_base(shapes: Shapes) -> tuple[BaseModelType | None, str]:
    width = None
    key = "ip_adapter.1.to_k_ip.weight"
    if key in shapes:
        width = shapes[key][-1]
    else:
        for k, v in shapes.items():
            if k.startswith("ip_adapter.") and k.endswith(".to_k_ip.weight"):
                width = v[-1]
                break
    base = {768: BaseModelType.StableDiffusion1, 1024: BaseModelType.StableDiffusion2,
            2048: BaseModelType.StableDiffusionXL}.get(width or 0)
    return base, f"IP-Adapter cross-attention width {width}" if width else "no ip_adapter.*.to_k_ip weight"


def _textual_inversion_width(shapes: Shapes) -> int | None:
    """Token width of an embedding file, or None when the keys are not an embedding's."""
    if "clip_g" in shapes:
        return shapes["clip_g"][-1] if shapes["clip_g"] else None
    if "emb_params" in shapes:
        return shapes["emb_params"][-1] if shapes["emb_params"] else None
    for k, v in shapes.items():
        if k.startswith("string_to_param") and v:
            return v[-1]
    # diffusers form: {"<token>": vector(s)}; only a handful of 1-D/2-D token-wide tensors
    if len(shapes) < 10 and all(1 <= len(s) <= 2 and s[-1] in (768, 1024, 1280) for s in shapes.values()):
        return next(iter(shapes.values()))[-1]
    return None


def lora_token_width(shapes: Shapes) -> int | None:
    """Width of the token vectors a LoRA was trained against (kohya, LyCORIS or diffusers keys).

    The UNet's cross-attention input (``attn2.to_k``/``to_v``) decides first; failing that
    the text encoder(s) (sdxl: CLIP-L + CLIP-G = 768 + 1280); failing that ``time_emb_proj``.
    """
    te: dict[str, int] = {}
    time_emb: int | None = None
    for key, shape in shapes.items():
        width = _lora_in_width(key, shape, shapes)
        if width is None:
            continue
        if _CROSS_ATTN_KEY.search(key) and not key.startswith(("lora_te", "text_encoder")):
            return width
        if "self_attn" in key:
            if key.startswith(("lora_te2_", "text_encoder_2.")):
                te.setdefault("te2", width)
            elif key.startswith(("lora_te_", "lora_te1_", "text_encoder.")):
                te.setdefault("te1", width)
        elif "time_emb_proj" in key and time_emb is None:
            time_emb = width
    if "te1" in te and "te2" in te:
        return te["te1"] + te["te2"]
    if "te1" in te:
        return te["te1"]
    return time_emb


def _lora_in_width(key: str, shape: tuple[int, ...], shapes: Shapes) -> int | None:
    """Input width of the adapted layer, from one LoRA/LyCORIS tensor (None if it does not show it)."""
    if len(shape) < 2:
        return None
    if key.endswith(("lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight",
                     ".lora_linear_layer.down.weight", ".hada_w1_b", ".hada_w2_b")):
        return shape[1]
    if key.endswith((".lokr_w1", ".lokr_w1_b")):
        module = key.rsplit(".", 1)[0]
        w2 = shapes.get(f"{module}.lokr_w2") or shapes.get(f"{module}.lokr_w2_b")
        if w2 is not None and len(w2) >= 2:
            return shape[1] * w2[1]
    return None


# --------------------------------------------------------------------------------------
# folders
# --------------------------------------------------------------------------------------

_PIPELINE_CLASSES = {
    "StableDiffusionPipeline", "StableDiffusionInpaintPipeline", "StableDiffusionImg2ImgPipeline",
    "StableDiffusionDepth2ImgPipeline", "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline", "LatentConsistencyModelPipeline",
}
_COMPONENT_CLASSES = {
    "AutoencoderKL": ModelType.Vae,
    "AutoencoderTiny": ModelType.Vae,
    "ControlNetModel": ModelType.ControlNet,
    "CLIPVisionModelWithProjection": ModelType.CLIPVision,
    "CLIPVisionModel": ModelType.CLIPVision,
    "T2IAdapter": ModelType.T2IAdapter,
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelError(f"{path}: not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InvalidModelError(f"{path}: not a JSON object")
    return data


def _first_file(folder: Path, stem: str) -> Path | None:
    for suffix in (".safetensors", ".bin"):
        p = folder / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def repo_variant(folder: Path) -> ModelRepoVariant:
    """fp16 / onnx / openvino / flax from the weight files' names (InvokeAI's rule)."""
    for p in sorted(folder.rglob("*")):
        if p.suffix not in (".safetensors", ".bin", ".onnx", ".msgpack", ".xml"):
            continue
        if ".fp16" in p.suffixes:
            return ModelRepoVariant.FP16
        if "openvino_model" in p.name:
            return ModelRepoVariant.OPENVINO
        if "flax_model" in p.name:
            return ModelRepoVariant.FLAX
        if p.suffix == ".onnx":
            return ModelRepoVariant.ONNX
    return ModelRepoVariant.DEFAULT


def classify_folder(folder: Path, read_checkpoint: Any) -> Detection:
    """Type, format, base and class fields of a model folder.

    ``read_checkpoint(path) -> StateDictInfo`` reads a weights file inside the folder (the
    caller supplies it, so the safe pickle reader is the only way a ``.bin`` is opened).
    """
    emb = _first_file(folder, "learned_embeds")
    if emb is not None:
        inner = classify_state_dict(read_checkpoint(emb), emb)
        det = Detection(ModelType.TextualInversion, ModelFormat.EmbeddingFolder)
        det.set_base(inner.fields.get("base"), inner.unknown.get("base", ""))
        return det
    lora = _first_file(folder, "pytorch_lora_weights") or _first_file(folder, "adapter_model")
    if lora is not None:
        inner = classify_state_dict(read_checkpoint(lora), lora)
        if inner.type is not ModelType.LoRA:
            raise cannot_tell(folder, f"{lora.name} does not hold LoRA weights")
        det = Detection(ModelType.LoRA, ModelFormat.Diffusers)
        det.set_base(inner.fields.get("base"), inner.unknown.get("base", ""))
        det.fields["repo_variant"] = repo_variant(folder)
        return det
    if (folder / "unet" / "model.onnx").is_file():
        return _onnx_folder(folder)
    if (folder / "image_encoder.txt").is_file():
        weights = _first_file(folder, "ip_adapter")
        if weights is None:
            raise cannot_tell(folder, "image_encoder.txt without ip_adapter.safetensors or ip_adapter.bin")
        det = Detection(ModelType.IPAdapter, ModelFormat.InvokeAI)
        det.set_base(*_ip_adapter_base(read_checkpoint(weights).shapes))
        line = (folder / "image_encoder.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        det.fields["image_encoder_model_id"] = line[0].strip() if line else None
        return det
    index = folder / "model_index.json"
    if index.is_file():
        cls = _read_json(index).get("_class_name")
        if cls in _PIPELINE_CLASSES:
            return _pipeline_folder(folder)
        raise cannot_tell(folder, f"model_index.json names {cls!r}, not a supported pipeline")
    config = folder / "config.json"
    if config.is_file():
        conf = _read_json(config)
        cls = conf.get("_class_name") or (conf.get("architectures") or [None])[0]
        type_ = _COMPONENT_CLASSES.get(str(cls))
        if type_ is None:
            raise cannot_tell(folder, f"config.json names {cls!r}, not a supported model class")
        return _component_folder(folder, type_, conf)
    raise cannot_tell(folder, "no model_index.json, config.json or known weights file in it")


def _pipeline_fields(folder: Path, det: Detection) -> None:
    """base / variant / prediction_type / upcast_attention of a pipeline folder, from its configs."""
    unet_conf_path = folder / "unet" / "config.json"
    unet_conf = _read_json(unet_conf_path) if unet_conf_path.is_file() else {}
    width = unet_conf.get("cross_attention_dim")
    base = _BASE_BY_CROSS_ATTENTION.get(width) if isinstance(width, int) else None
    det.set_base(base, f"unet cross_attention_dim {width}" if width else "no unet/config.json")
    in_ch = unet_conf.get("in_channels", 4)
    variant = _VARIANT_BY_IN_CHANNELS.get(in_ch) if isinstance(in_ch, int) else None
    if variant is None:
        det.unknown["variant"] = f"unet in_channels {in_ch}"
    else:
        det.fields["variant"] = variant
    sched_path = folder / "scheduler" / "scheduler_config.json"
    pred = _read_json(sched_path).get("prediction_type", "epsilon") if sched_path.is_file() else "epsilon"
    try:
        prediction = SchedulerPredictionType(pred)
    except ValueError:
        det.unknown["prediction_type"] = f"scheduler prediction_type {pred!r}"
        prediction = None
    if prediction is not None:
        det.fields["prediction_type"] = prediction
    det.fields["upcast_attention"] = bool(unet_conf.get("upcast_attention")) or (
        base is BaseModelType.StableDiffusion2 and prediction is SchedulerPredictionType.VPrediction)


def _pipeline_folder(folder: Path) -> Detection:
    det = Detection(ModelType.Main, ModelFormat.Diffusers)
    _pipeline_fields(folder, det)
    det.fields["repo_variant"] = repo_variant(folder)
    return det


def _onnx_folder(folder: Path) -> Detection:
    det = Detection(ModelType.ONNX, ModelFormat.ONNX)
    if (folder / "unet" / "config.json").is_file():
        _pipeline_fields(folder, det)
    else:
        det.fields["base"] = BaseModelType.StableDiffusion1
        det.notes.append(f"{folder}: an ONNX pipeline without unet/config.json; assumed base sd-1")
        det.fields["variant"] = ModelVariantType.Normal
        det.fields["upcast_attention"] = False
        sched = folder / "scheduler" / "scheduler_config.json"
        pred = _read_json(sched).get("prediction_type", "epsilon") if sched.is_file() else "epsilon"
        valid = {p.value for p in SchedulerPredictionType}
        det.fields["prediction_type"] = SchedulerPredictionType(pred if pred in valid else "epsilon")
    det.fields["repo_variant"] = ModelRepoVariant.ONNX
    return det


def _component_folder(folder: Path, type_: ModelType, conf: Mapping[str, Any]) -> Detection:
    det = Detection(type_, ModelFormat.Diffusers)
    det.fields["repo_variant"] = repo_variant(folder)
    if type_ is ModelType.Vae:
        name = folder.parent.name if folder.name == "vae" else folder.name
        xl = conf.get("scaling_factor") == 0.13025 or bool(_SDXL_NAME.search(name))
        det.set_base(BaseModelType.StableDiffusionXL if xl else BaseModelType.StableDiffusion1, "")
    elif type_ is ModelType.ControlNet:
        width = conf.get("cross_attention_dim")
        base = {768: BaseModelType.StableDiffusion1, 1024: BaseModelType.StableDiffusion2,
                2048: BaseModelType.StableDiffusionXL}.get(width) if isinstance(width, int) else None
        det.set_base(base, f"cross_attention_dim {width}")
    elif type_ is ModelType.CLIPVision:
        det.set_base(BaseModelType.Any, "")
    elif type_ is ModelType.T2IAdapter:
        kind = conf.get("adapter_type")
        base = {"full_adapter_xl": BaseModelType.StableDiffusionXL, "full_adapter": BaseModelType.StableDiffusion1,
                "light_adapter": BaseModelType.StableDiffusion1}.get(str(kind))
        det.set_base(base, f"adapter_type {kind!r}")
    return det
