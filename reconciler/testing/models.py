"""Builders of tiny but real model files, for tests, benchmarks and the quick start.

Every builder writes genuine files: safetensors files that ``safetensors`` reads, JSON
configs that diffusers and transformers accept, ONNX protobufs.  The tensors carry the
exact key names of the real checkpoints, and every tensor whose shape *decides* what a
model is (the UNet's input channels, the cross-attention width, a LoRA's token-vector
width, an embedding's width) has the real size along the deciding axis; all other sizes
are tiny, so a file takes a few KB.

Two levels of "real":

* **Checkpoints** (``write_main_checkpoint``, ``write_vae_checkpoint``, LoRAs, embeddings,
  ControlNet and IP-Adapter files) hold a representative subset of the real keys with the
  deciding shapes.  Probers read them exactly as they read the real thing; a loader that
  needs every weight of a full checkpoint will not find them.
* **Diffusers folders** (``write_diffusers_pipeline``, ``write_vae_diffusers``,
  ``write_controlnet_diffusers``, ``write_clip_vision``, ``write_t2i_adapter``) are complete:
  every weight of the (tiny) architecture that their config describes is present, so
  ``from_pretrained`` loads them.  The sd-1 pipeline runs end to end on a CPU in well under
  a second.  To keep the real cross-attention width (768 for sd-1) without a 768-wide text
  encoder, the UNet projects the 16-wide text-encoder output up with diffusers'
  ``encoder_hid_proj`` (``encoder_hid_dim_type="text_proj"``).

This module imports numpy only (never torch; it writes safetensors files itself), so test
collection stays fast.  Outputs are deterministic: the same call writes the same bytes.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BASES",
    "CROSS_ATTENTION_WIDTH",
    "TOKEN_WIDTH",
    "write_safetensors",
    "write_main_checkpoint",
    "write_vae_checkpoint",
    "write_lora_kohya",
    "write_lora_lycoris",
    "write_lora_diffusers",
    "write_lora_diffusers_folder",
    "write_textual_inversion",
    "write_textual_inversion_folder",
    "write_controlnet_checkpoint",
    "write_ip_adapter_checkpoint",
    "write_ip_adapter_folder",
    "write_diffusers_pipeline",
    "write_vae_diffusers",
    "write_controlnet_diffusers",
    "write_clip_vision",
    "write_t2i_adapter",
    "write_onnx_pipeline",
    "write_not_a_model",
    "write_malicious_pickle",
]

#: Base model names the builders accept (the values of ``BaseModelType``).
BASES = ("sd-1", "sd-2", "sdxl", "sdxl-refiner")

#: Width of the UNet's cross-attention (``attn2.to_k`` input) per base.
CROSS_ATTENTION_WIDTH = {"sd-1": 768, "sd-2": 1024, "sdxl": 2048, "sdxl-refiner": 1280}

#: Width of one token vector of the text encoder(s) per base (sdxl: CLIP-L + CLIP-G).
TOKEN_WIDTH = {"sd-1": 768, "sd-2": 1024, "sdxl": 768 + 1280}

_IN_CHANNELS = {"normal": 4, "inpaint": 9, "depth": 5}
_DIFFUSERS_VERSION = "0.27.0"
_TINY = 8  # channel count of every non-deciding layer


def _check_base(base: str, allowed: Iterable[str] = BASES) -> str:
    allowed = tuple(allowed)
    if base not in allowed:
        raise ValueError(f"base must be one of {', '.join(allowed)}; got {base!r}")
    return base


class _StateDict:
    """Collects named numpy tensors with deterministic small values."""

    def __init__(self, seed: int = 0, dtype: Any = np.float32) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        self._rng = np.random.default_rng(seed)
        self._dtype = dtype

    def rand(self, key: str, *shape: int) -> None:
        self.tensors[key] = (self._rng.standard_normal(shape) * 0.02).astype(self._dtype)

    def const(self, key: str, value: float, *shape: int) -> None:
        self.tensors[key] = np.full(shape, value, dtype=self._dtype)

    def linear(self, prefix: str, out: int, inp: int, bias: bool = True) -> None:
        self.rand(f"{prefix}.weight", out, inp)
        if bias:
            self.const(f"{prefix}.bias", 0.0, out)

    def conv(self, prefix: str, out: int, inp: int, k: int = 3) -> None:
        self.rand(f"{prefix}.weight", out, inp, k, k)
        self.const(f"{prefix}.bias", 0.0, out)

    def norm(self, prefix: str, ch: int) -> None:
        self.const(f"{prefix}.weight", 1.0, ch)
        self.const(f"{prefix}.bias", 0.0, ch)

    # --- diffusers building blocks (names as diffusers' modules register them) ---

    def resnet(self, prefix: str, inp: int, out: int, temb: int | None) -> None:
        self.norm(f"{prefix}.norm1", inp)
        self.conv(f"{prefix}.conv1", out, inp)
        if temb is not None:
            self.linear(f"{prefix}.time_emb_proj", out, temb)
        self.norm(f"{prefix}.norm2", out)
        self.conv(f"{prefix}.conv2", out, out)
        if inp != out:
            self.conv(f"{prefix}.conv_shortcut", out, inp, 1)

    def transformer2d(self, prefix: str, ch: int, ctx: int, linear_proj: bool) -> None:
        self.norm(f"{prefix}.norm", ch)
        if linear_proj:
            self.linear(f"{prefix}.proj_in", ch, ch)
        else:
            self.conv(f"{prefix}.proj_in", ch, ch, 1)
        tb = f"{prefix}.transformer_blocks.0"
        self.norm(f"{tb}.norm1", ch)
        for name in ("to_q", "to_k", "to_v"):
            self.linear(f"{tb}.attn1.{name}", ch, ch, bias=False)
        self.linear(f"{tb}.attn1.to_out.0", ch, ch)
        self.norm(f"{tb}.norm2", ch)
        self.linear(f"{tb}.attn2.to_q", ch, ch, bias=False)
        self.linear(f"{tb}.attn2.to_k", ch, ctx, bias=False)  # the deciding width
        self.linear(f"{tb}.attn2.to_v", ch, ctx, bias=False)
        self.linear(f"{tb}.attn2.to_out.0", ch, ch)
        self.norm(f"{tb}.norm3", ch)
        self.linear(f"{tb}.ff.net.0.proj", ch * 8, ch)  # GEGLU: 2 x (4 x ch)
        self.linear(f"{tb}.ff.net.2", ch, ch * 4)
        if linear_proj:
            self.linear(f"{prefix}.proj_out", ch, ch)
        else:
            self.conv(f"{prefix}.proj_out", ch, ch, 1)

    def vae_attention(self, prefix: str, ch: int) -> None:
        self.norm(f"{prefix}.group_norm", ch)
        for name in ("to_q", "to_k", "to_v", "to_out.0"):
            self.linear(f"{prefix}.{name}", ch, ch)

    def clip_encoder(self, prefix: str, hidden: int, inter: int) -> None:
        layer = f"{prefix}.encoder.layers.0"
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            self.linear(f"{layer}.self_attn.{name}", hidden, hidden)
        self.norm(f"{layer}.layer_norm1", hidden)
        self.linear(f"{layer}.mlp.fc1", inter, hidden)
        self.linear(f"{layer}.mlp.fc2", hidden, inter)
        self.norm(f"{layer}.layer_norm2", hidden)


_NP_DTYPES = {"float16": "F16", "float32": "F32", "float64": "F64", "int8": "I8", "int16": "I16",
              "int32": "I32", "int64": "I64", "uint8": "U8", "bool": "BOOL"}


def write_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``tensors`` to ``path`` as safetensors (parents created); returns the path.

    Written here rather than with ``safetensors.numpy.save_file`` so that the bytes are
    reproducible: the library writes ``__metadata__`` from a hash map whose order changes
    from run to run.  The layout is the library's: ``__metadata__`` first, tensors in order,
    the header padded with spaces to a multiple of 8; ``safetensors`` reads it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, array in tensors.items():
        arr = np.ascontiguousarray(array)
        dtype = _NP_DTYPES.get(arr.dtype.name)
        if dtype is None:
            raise ValueError(f"tensor {name!r}: unsupported dtype {arr.dtype}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for data in blobs:
            fh.write(data)
    return path


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# --------------------------------------------------------------------------------------
# single-file checkpoints
# --------------------------------------------------------------------------------------


def write_main_checkpoint(path: str | Path, base: str = "sd-1", variant: str = "normal") -> Path:
    """A main model in LDM (original Stability) checkpoint layout.

    Deciding shapes: ``model.diffusion_model.input_blocks.0.0.weight`` has ``in_channels``
    4 (normal), 9 (inpaint) or 5 (depth) along axis 1; the cross-attention ``to_k`` is
    768 (sd-1) / 1024 (sd-2) wide at ``input_blocks.2.1``, 2048 (sdxl) / 1280
    (sdxl-refiner) at ``input_blocks.4.1``.  Text-encoder and VAE keys are those of the real
    files (``cond_stage_model.*`` for sd-1/sd-2, ``conditioner.embedders.*`` for sdxl,
    ``first_stage_model.*``).
    """
    _check_base(base)
    if variant not in _IN_CHANNELS:
        raise ValueError(f"variant must be one of {', '.join(_IN_CHANNELS)}; got {variant!r}")
    sd = _StateDict(seed=1, dtype=np.float16)
    c, ctx = 4, CROSS_ATTENTION_WIDTH[base]
    unet = "model.diffusion_model"
    sd.conv(f"{unet}.input_blocks.0.0", c, _IN_CHANNELS[variant])
    sd.linear(f"{unet}.time_embed.0", c, c)
    rows = 2  # output rows of the wide (deciding) tensors: tiny, unlike the width
    blk = "2.1" if base in ("sd-1", "sd-2") else "4.1"
    tb = f"{unet}.input_blocks.{blk}.transformer_blocks.0"
    sd.linear(f"{tb}.attn2.to_q", rows, rows, bias=False)
    sd.linear(f"{tb}.attn2.to_k", rows, ctx, bias=False)
    sd.linear(f"{tb}.attn2.to_v", rows, ctx, bias=False)
    if base == "sdxl":
        sd.linear(f"{unet}.label_emb.0.0", rows, 2816)  # adm_in_channels
    elif base == "sdxl-refiner":
        sd.linear(f"{unet}.label_emb.0.0", rows, 2560)
    sd.norm(f"{unet}.out.0", c)
    sd.conv(f"{unet}.out.2", 4, c)
    # the built-in VAE
    sd.conv("first_stage_model.encoder.conv_in", c, 3)
    sd.conv("first_stage_model.decoder.conv_in", c, 4)
    sd.conv("first_stage_model.quant_conv", 8, 8, 1)
    sd.conv("first_stage_model.post_quant_conv", 4, 4, 1)
    # the text encoder(s)
    if base == "sd-1":
        sd.norm("cond_stage_model.transformer.text_model.final_layer_norm", 768)
    elif base == "sd-2":
        sd.norm("cond_stage_model.model.ln_final", 1024)
    elif base == "sdxl":
        sd.norm("conditioner.embedders.0.transformer.text_model.final_layer_norm", 768)
        sd.norm("conditioner.embedders.1.model.ln_final", 1280)
    else:
        sd.norm("conditioner.embedders.0.model.ln_final", 1280)
    return write_safetensors(path, sd.tensors)


def write_vae_checkpoint(path: str | Path, base: str = "sd-1") -> Path:
    """A standalone VAE in LDM layout (``encoder.conv_in`` ... ``post_quant_conv``).

    SD-1 and SDXL VAEs have identical shapes; an sdxl VAE is marked the way model-spec
    files mark it, with ``__metadata__["modelspec.architecture"]``.
    """
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    sd = _StateDict(seed=2, dtype=np.float16)
    c = _TINY
    sd.conv("encoder.conv_in", c, 3)
    sd.norm("encoder.down.0.block.0.norm1", c)
    sd.conv("encoder.down.0.block.0.conv1", c, c)
    sd.norm("encoder.mid.attn_1.norm", c)
    sd.conv("encoder.mid.attn_1.q", c, c, 1)
    sd.norm("encoder.norm_out", c)
    sd.conv("encoder.conv_out", 8, c)
    sd.conv("decoder.conv_in", c, 4)
    sd.norm("decoder.up.0.block.0.norm1", c)
    sd.conv("decoder.up.0.block.0.conv1", c, c)
    sd.norm("decoder.norm_out", c)
    sd.conv("decoder.conv_out", 3, c)
    sd.conv("quant_conv", 8, 8, 1)
    sd.conv("post_quant_conv", 4, 4, 1)
    meta = {"modelspec.architecture": "stable-diffusion-xl-v1-base/vae"} if base == "sdxl" else None
    return write_safetensors(path, sd.tensors, meta)


def _lora_targets(base: str) -> list[tuple[str, int, int]]:
    """(kohya module name, in-width, out-width) of the layers a small LoRA adapts."""
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    if base in ("sd-1", "sd-2"):
        w = TOKEN_WIDTH[base]
        return [
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", w, 320),
            ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v", w, 320),
            ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", w, w),
        ]
    # kohya names sdxl UNet modules after the LDM layout
    return [
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k", 2048, 640),
        ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_v", 2048, 640),
        ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768),
        ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280),
    ]


def write_lora_kohya(path: str | Path, base: str = "sd-1", rank: int = 1) -> Path:
    """A kohya-ss LoRA: ``lora_unet_*`` / ``lora_te_*`` (sdxl: ``lora_te1_``, ``lora_te2_``).

    Each module has ``.lora_down.weight`` (rank x in), ``.lora_up.weight`` (out x rank)
    and a scalar ``.alpha``; the base shows in the ``lora_down`` widths (768 / 1024 /
    2048 for the UNet's cross-attention).
    """
    sd = _StateDict(seed=3, dtype=np.float16)
    for name, inp, out in _lora_targets(base):
        sd.rand(f"{name}.lora_down.weight", rank, inp)
        sd.rand(f"{name}.lora_up.weight", out, rank)
        sd.const(f"{name}.alpha", float(rank))
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank)}
    return write_safetensors(path, sd.tensors, meta)


def write_lora_lycoris(path: str | Path, base: str = "sd-1", algo: str = "loha", rank: int = 1) -> Path:
    """A LyCORIS adapter with kohya module names: LoHa (``hada_w1_a`` ...) or LoKr (``lokr_w1`` ...)."""
    if algo not in ("loha", "lokr"):
        raise ValueError(f"algo must be 'loha' or 'lokr'; got {algo!r}")
    sd = _StateDict(seed=4, dtype=np.float16)
    for name, inp, out in _lora_targets(base):
        if algo == "loha":
            for i in (1, 2):
                sd.rand(f"{name}.hada_w{i}_a", out, rank)
                sd.rand(f"{name}.hada_w{i}_b", rank, inp)
        else:  # kron(w1, w2) has shape (2*4, 4*(inp/4)) here: w1 is 2x4, w2 = w2_a @ w2_b
            sd.rand(f"{name}.lokr_w1", 2, 4)
            sd.rand(f"{name}.lokr_w2_a", 4, rank)
            sd.rand(f"{name}.lokr_w2_b", rank, inp // 4)
        sd.const(f"{name}.alpha", float(rank))
    meta = {"ss_network_module": "lycoris.kohya", "ss_network_args": json.dumps({"algo": algo})}
    return write_safetensors(path, sd.tensors, meta)


def _diffusers_lora_tensors(base: str, style: str, rank: int) -> dict[str, np.ndarray]:
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    if style not in ("peft", "attn_procs"):
        raise ValueError(f"style must be 'peft' or 'attn_procs'; got {style!r}")
    sd = _StateDict(seed=5, dtype=np.float16)
    ctx = CROSS_ATTENTION_WIDTH[base]
    blk = "down_blocks.1" if base == "sdxl" else "down_blocks.0"
    out = 640 if base == "sdxl" else 320
    if style == "attn_procs":
        # diffusers' original attention-processor layout (pytorch_lora_weights.bin of 2023)
        for proj in ("to_k", "to_v"):
            p = f"{blk}.attentions.0.transformer_blocks.0.attn2.processor.{proj}_lora"
            sd.rand(f"{p}.down.weight", rank, ctx)
            sd.rand(f"{p}.up.weight", out, rank)
        return sd.tensors
    for proj in ("to_k", "to_v"):
        p = f"unet.{blk}.attentions.0.transformer_blocks.0.attn2.{proj}"
        sd.rand(f"{p}.lora_A.weight", rank, ctx)
        sd.rand(f"{p}.lora_B.weight", out, rank)
    encoders = [("text_encoder", 768 if base != "sd-2" else 1024)]
    if base == "sdxl":
        encoders.append(("text_encoder_2", 1280))
    for enc, w in encoders:
        p = f"{enc}.text_model.encoder.layers.0.self_attn.q_proj"
        sd.rand(f"{p}.lora_A.weight", rank, w)
        sd.rand(f"{p}.lora_B.weight", w, rank)
    return sd.tensors


def write_lora_diffusers(path: str | Path, base: str = "sd-1", style: str = "peft", rank: int = 1) -> Path:
    """A LoRA in diffusers layout in one file.

    ``style="peft"``: what ``save_lora_weights`` writes today
    (``unet.<module>.lora_A.weight`` / ``lora_B``, ``text_encoder.*``, ``text_encoder_2.*``);
    ``style="attn_procs"``: the older ``<module>.processor.to_k_lora.down.weight`` form.
    """
    return write_safetensors(path, _diffusers_lora_tensors(base, style, rank))


def write_lora_diffusers_folder(folder: str | Path, base: str = "sd-1", style: str = "peft",
                                rank: int = 1) -> Path:
    """A diffusers LoRA folder: ``pytorch_lora_weights.safetensors``."""
    folder = Path(folder)
    write_safetensors(folder / "pytorch_lora_weights.safetensors", _diffusers_lora_tensors(base, style, rank))
    return folder


def write_textual_inversion(path: str | Path, base: str = "sd-1", form: str | None = None,
                            vectors: int = 2) -> Path:
    """A textual-inversion embedding in one file.

    Forms: ``emb_params`` (A1111's safetensors), ``string_to_param`` (the original
    ``{"string_to_param": {"*": tensor}}``, flattened the way safetensors stores it),
    ``diffusers`` (``{"<token>": tensor}``), and for sdxl ``clip_l`` + ``clip_g``
    (the default and only form for sdxl).  The width of a vector decides the base:
    768 (sd-1), 1024 (sd-2), 1280 (clip_g, sdxl).
    """
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    sd = _StateDict(seed=6, dtype=np.float32)
    if base == "sdxl":
        if form not in (None, "clip_g"):
            raise ValueError("an sdxl embedding has clip_l + clip_g tensors; form must be None")
        sd.rand("clip_l", vectors, 768)
        sd.rand("clip_g", vectors, 1280)
        return write_safetensors(path, sd.tensors)
    form = form or "emb_params"
    w = TOKEN_WIDTH[base]
    if form == "emb_params":
        sd.rand("emb_params", vectors, w)
    elif form == "string_to_param":
        sd.rand("string_to_param.*", vectors, w)
    elif form == "diffusers":
        sd.rand("<tiny-token>", vectors, w)
    else:
        raise ValueError(f"unknown embedding form {form!r}")
    return write_safetensors(path, sd.tensors)


def write_textual_inversion_folder(folder: str | Path, base: str = "sd-1") -> Path:
    """A diffusers textual-inversion folder: ``learned_embeds.safetensors`` (``{"<token>": 1 x width}``)."""
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    folder = Path(folder)
    if base == "sdxl":
        write_textual_inversion(folder / "learned_embeds.safetensors", base="sdxl", vectors=1)
    else:
        write_textual_inversion(folder / "learned_embeds.safetensors", base=base, form="diffusers", vectors=1)
    (folder / "token_identifier.txt").write_text("<tiny-token>")
    return folder


def write_controlnet_checkpoint(path: str | Path, base: str = "sd-1", layout: str | None = None) -> Path:
    """A ControlNet in one file.

    ``layout="ldm"`` (default for sd-1/sd-2): ``control_model.*`` keys as in lllyasviel's
    ``.pth``/``.safetensors`` files, cross-attention width at ``input_blocks.2.1``;
    ``layout="diffusers"`` (default for sdxl): a diffusers ``ControlNetModel`` state dict
    (``controlnet_cond_embedding.*``, ``controlnet_down_blocks.*``), width at
    ``down_blocks.1.attentions.0``.
    """
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    layout = layout or ("diffusers" if base == "sdxl" else "ldm")
    sd = _StateDict(seed=7, dtype=np.float16)
    c, ctx = 4, CROSS_ATTENTION_WIDTH[base]
    if layout == "ldm":
        cm = "control_model"
        sd.conv(f"{cm}.input_hint_block.0", 16, 3)
        sd.conv(f"{cm}.input_blocks.0.0", c, 4)
        tb = f"{cm}.input_blocks.2.1.transformer_blocks.0"
        sd.linear(f"{tb}.attn2.to_k", c, ctx, bias=False)
        sd.linear(f"{tb}.attn2.to_v", c, ctx, bias=False)
        sd.conv(f"{cm}.zero_convs.0.0", c, c, 1)
        sd.conv(f"{cm}.middle_block_out.0", c, c, 1)
    elif layout == "diffusers":
        sd.conv("conv_in", c, 4)
        sd.conv("controlnet_cond_embedding.conv_in", 16, 3)
        sd.conv("controlnet_cond_embedding.conv_out", c, 16)
        tb = "down_blocks.1.attentions.0.transformer_blocks.0"
        sd.linear(f"{tb}.attn2.to_k", c, ctx, bias=False)
        sd.linear(f"{tb}.attn2.to_v", c, ctx, bias=False)
        sd.conv("controlnet_down_blocks.0", c, c, 1)
        sd.conv("controlnet_mid_block", c, c, 1)
    else:
        raise ValueError(f"layout must be 'ldm' or 'diffusers'; got {layout!r}")
    return write_safetensors(path, sd.tensors)


def _ip_adapter_tensors(base: str) -> dict[str, np.ndarray]:
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    sd = _StateDict(seed=8, dtype=np.float16)
    ctx = CROSS_ATTENTION_WIDTH[base]
    sd.linear("image_proj.proj", 16, 8)
    sd.norm("image_proj.norm", 4)
    for i in (1, 3):
        sd.linear(f"ip_adapter.{i}.to_k_ip", 4, ctx, bias=False)
        sd.linear(f"ip_adapter.{i}.to_v_ip", 4, ctx, bias=False)
    return sd.tensors


def write_ip_adapter_checkpoint(path: str | Path, base: str = "sd-1") -> Path:
    """An IP-Adapter in one file: ``image_proj.*`` and ``ip_adapter.<n>.to_k_ip.weight`` (out x cross-attention width)."""
    return write_safetensors(path, _ip_adapter_tensors(base))


def write_ip_adapter_folder(folder: str | Path, base: str = "sd-1",
                            image_encoder: str = "InvokeAI/ip_adapter_sd_image_encoder") -> Path:
    """An IP-Adapter in InvokeAI's folder layout: weights plus ``image_encoder.txt``.

    InvokeAI writes ``ip_adapter.bin`` (a torch pickle of ``{"image_proj": ..., "ip_adapter": ...}``);
    this builder writes the same tensors flattened into ``ip_adapter.safetensors`` so it needs no torch.
    """
    folder = Path(folder)
    write_safetensors(folder / "ip_adapter.safetensors", _ip_adapter_tensors(base))
    (folder / "image_encoder.txt").write_text(image_encoder + "\n")
    return folder


# --------------------------------------------------------------------------------------
# diffusers folders (complete, loadable)
# --------------------------------------------------------------------------------------

_TEXT_HIDDEN = 16
_PROJECTION = 8


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_clip_tokenizer(folder: Path) -> None:
    """A byte-level CLIP tokenizer: 2 special tokens + 256 bytes + their ``</w>`` forms, no merges."""
    chars = list(_bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    _write_json(folder / "vocab.json", vocab)
    (folder / "merges.txt").write_text("#version: 0.2\n")
    _write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    })


_VOCAB_SIZE = 2 + 2 * 256


def _write_text_encoder(folder: Path, with_projection: bool, fp16: bool, seed: int) -> None:
    arch = "CLIPTextModelWithProjection" if with_projection else "CLIPTextModel"
    _write_json(folder / "config.json", {
        "architectures": [arch],
        "model_type": "clip_text_model",
        "hidden_size": _TEXT_HIDDEN,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "vocab_size": _VOCAB_SIZE,
        "projection_dim": _PROJECTION,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
        "torch_dtype": "float16" if fp16 else "float32",
    })
    sd = _StateDict(seed=seed, dtype=np.float16 if fp16 else np.float32)
    sd.rand("text_model.embeddings.token_embedding.weight", _VOCAB_SIZE, _TEXT_HIDDEN)
    sd.rand("text_model.embeddings.position_embedding.weight", 77, _TEXT_HIDDEN)
    sd.clip_encoder("text_model", _TEXT_HIDDEN, 8)
    sd.norm("text_model.final_layer_norm", _TEXT_HIDDEN)
    if with_projection:
        sd.linear("text_projection", _PROJECTION, _TEXT_HIDDEN, bias=False)
    name = "model.fp16.safetensors" if fp16 else "model.safetensors"
    write_safetensors(folder / name, sd.tensors, {"format": "pt"})


def _unet_config(base: str, in_channels: int, upcast_attention: bool) -> dict[str, Any]:
    sdxl = base in ("sdxl", "sdxl-refiner")
    cfg: dict[str, Any] = {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "sample_size": 128 if sdxl else (96 if base == "sd-2" else 64),
        "in_channels": in_channels,
        "out_channels": 4,
        "block_out_channels": [_TINY],
        "down_block_types": ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "attention_head_dim": 2,
        "cross_attention_dim": CROSS_ATTENTION_WIDTH[base],
        "use_linear_projection": base != "sd-1",
        "upcast_attention": upcast_attention,
        # project the tiny text encoder's output up to the real cross-attention width
        "encoder_hid_dim": _TEXT_HIDDEN * (2 if base == "sdxl" else 1),
        "encoder_hid_dim_type": "text_proj",
    }
    if sdxl:
        time_ids = 6 if base == "sdxl" else 5
        cfg.update({
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 2,
            "projection_class_embeddings_input_dim": time_ids * 2 + _PROJECTION,
        })
    return cfg


def _unet_tensors(cfg: Mapping[str, Any], fp16: bool) -> dict[str, np.ndarray]:
    sd = _StateDict(seed=9, dtype=np.float16 if fp16 else np.float32)
    ch, temb = _TINY, _TINY * 4
    ctx = cfg["cross_attention_dim"]
    lin = cfg["use_linear_projection"]
    sd.conv("conv_in", ch, cfg["in_channels"])
    sd.linear("time_embedding.linear_1", temb, ch)
    sd.linear("time_embedding.linear_2", temb, temb)
    if cfg.get("addition_embed_type") == "text_time":
        sd.linear("add_embedding.linear_1", temb, cfg["projection_class_embeddings_input_dim"])
        sd.linear("add_embedding.linear_2", temb, temb)
    sd.linear("encoder_hid_proj", ctx, cfg["encoder_hid_dim"])
    sd.resnet("down_blocks.0.resnets.0", ch, ch, temb)
    sd.resnet("up_blocks.0.resnets.0", 2 * ch, ch, temb)
    sd.resnet("up_blocks.0.resnets.1", 2 * ch, ch, temb)
    sd.transformer2d("mid_block.attentions.0", ch, ctx, lin)
    sd.resnet("mid_block.resnets.0", ch, ch, temb)
    sd.resnet("mid_block.resnets.1", ch, ch, temb)
    sd.norm("conv_norm_out", ch)
    sd.conv("conv_out", 4, ch)
    return sd.tensors


def _weights_name(fp16: bool) -> str:
    return "diffusion_pytorch_model.fp16.safetensors" if fp16 else "diffusion_pytorch_model.safetensors"


def _vae_config(base: str) -> dict[str, Any]:
    return {
        "_class_name": "AutoencoderKL",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D"],
        "block_out_channels": [_TINY],
        "layers_per_block": 1,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 4,
        "sample_size": 1024 if base in ("sdxl", "sdxl-refiner") else 512,
        "scaling_factor": 0.13025 if base in ("sdxl", "sdxl-refiner") else 0.18215,
    }


def _vae_tensors(fp16: bool) -> dict[str, np.ndarray]:
    sd = _StateDict(seed=10, dtype=np.float16 if fp16 else np.float32)
    c = _TINY
    sd.conv("encoder.conv_in", c, 3)
    sd.resnet("encoder.down_blocks.0.resnets.0", c, c, None)
    sd.vae_attention("encoder.mid_block.attentions.0", c)
    sd.resnet("encoder.mid_block.resnets.0", c, c, None)
    sd.resnet("encoder.mid_block.resnets.1", c, c, None)
    sd.norm("encoder.conv_norm_out", c)
    sd.conv("encoder.conv_out", 8, c)
    sd.conv("decoder.conv_in", c, 4)
    sd.resnet("decoder.up_blocks.0.resnets.0", c, c, None)
    sd.resnet("decoder.up_blocks.0.resnets.1", c, c, None)
    sd.vae_attention("decoder.mid_block.attentions.0", c)
    sd.resnet("decoder.mid_block.resnets.0", c, c, None)
    sd.resnet("decoder.mid_block.resnets.1", c, c, None)
    sd.norm("decoder.conv_norm_out", c)
    sd.conv("decoder.conv_out", 3, c)
    sd.conv("quant_conv", 8, 8, 1)
    sd.conv("post_quant_conv", 4, 4, 1)
    return sd.tensors


def write_vae_diffusers(folder: str | Path, base: str = "sd-1", fp16: bool = False) -> Path:
    """A diffusers ``AutoencoderKL`` folder (config.json + weights); sdxl has ``scaling_factor`` 0.13025."""
    _check_base(base)
    folder = Path(folder)
    _write_json(folder / "config.json", _vae_config(base))
    write_safetensors(folder / _weights_name(fp16), _vae_tensors(fp16), {"format": "pt"})
    return folder


_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
}


def pipeline_class_name(base: str, variant: str = "normal") -> str:
    """The diffusers pipeline class a ``model_index.json`` names for this base and variant."""
    if base == "sdxl":
        return "StableDiffusionXLInpaintPipeline" if variant == "inpaint" else "StableDiffusionXLPipeline"
    if base == "sdxl-refiner":
        return "StableDiffusionXLImg2ImgPipeline"
    return {"normal": "StableDiffusionPipeline", "inpaint": "StableDiffusionInpaintPipeline",
            "depth": "StableDiffusionDepth2ImgPipeline"}[variant]


def write_diffusers_pipeline(folder: str | Path, base: str = "sd-1", variant: str = "normal",
                             prediction_type: str | None = None, upcast_attention: bool | None = None,
                             fp16: bool = False) -> Path:
    """A complete diffusers pipeline folder: ``model_index.json`` and every component.

    ``base`` picks the pipeline class and the UNet's ``cross_attention_dim`` (768 / 1024 /
    2048 / 1280); ``variant`` the UNet's ``in_channels`` (4 / 9 / 5); ``prediction_type``
    goes into ``scheduler/scheduler_config.json`` (default: ``v_prediction`` for a normal
    sd-2 pipeline, as stable-diffusion-2-1 ships, ``epsilon`` otherwise); ``fp16`` names
    the weights ``*.fp16.safetensors`` (a repo variant).
    """
    _check_base(base)
    if variant not in _IN_CHANNELS:
        raise ValueError(f"variant must be one of {', '.join(_IN_CHANNELS)}; got {variant!r}")
    if prediction_type is None:
        prediction_type = "v_prediction" if base == "sd-2" and variant == "normal" else "epsilon"
    if upcast_attention is None:
        upcast_attention = base == "sd-2" and prediction_type == "v_prediction"
    folder = Path(folder)
    sdxl = base in ("sdxl", "sdxl-refiner")
    index: dict[str, Any]
    index = {"_class_name": pipeline_class_name(base, variant), "_diffusers_version": _DIFFUSERS_VERSION}
    sched_cls = "EulerDiscreteScheduler" if sdxl else "DDIMScheduler"
    index["scheduler"] = ["diffusers", sched_cls]
    if base == "sdxl-refiner":
        index["text_encoder"] = [None, None]
        index["tokenizer"] = [None, None]
    else:
        index["text_encoder"] = ["transformers", "CLIPTextModel"]
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
        _write_text_encoder(folder / "text_encoder", with_projection=False, fp16=fp16, seed=11)
        write_clip_tokenizer(folder / "tokenizer")
    if sdxl:
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
        _write_text_encoder(folder / "text_encoder_2", with_projection=True, fp16=fp16, seed=12)
        write_clip_tokenizer(folder / "tokenizer_2")
        if base == "sdxl":
            index["force_zeros_for_empty_prompt"] = True
        else:
            index["requires_aesthetics_score"] = True
            index["force_zeros_for_empty_prompt"] = False
    else:
        index["safety_checker"] = [None, None]
        index["feature_extractor"] = [None, None]
        index["requires_safety_checker"] = False
        if variant == "depth":
            index["depth_estimator"] = [None, None]
    index["unet"] = ["diffusers", "UNet2DConditionModel"]
    index["vae"] = ["diffusers", "AutoencoderKL"]
    _write_json(folder / "model_index.json", index)

    sched: dict[str, Any] = {"_class_name": sched_cls, "_diffusers_version": _DIFFUSERS_VERSION, **_SCHEDULER}
    sched["prediction_type"] = prediction_type
    if sched_cls == "DDIMScheduler":
        sched.update({"clip_sample": False, "set_alpha_to_one": False})
    _write_json(folder / "scheduler" / "scheduler_config.json", sched)

    ucfg = _unet_config(base, _IN_CHANNELS[variant], upcast_attention)
    _write_json(folder / "unet" / "config.json", ucfg)
    write_safetensors(folder / "unet" / _weights_name(fp16), _unet_tensors(ucfg, fp16), {"format": "pt"})
    write_vae_diffusers(folder / "vae", base=base, fp16=fp16)
    return folder


def write_controlnet_diffusers(folder: str | Path, base: str = "sd-1") -> Path:
    """A diffusers ``ControlNetModel`` folder with the base's ``cross_attention_dim``."""
    _check_base(base, ("sd-1", "sd-2", "sdxl"))
    folder = Path(folder)
    ctx = CROSS_ATTENTION_WIDTH[base]
    ch, temb = _TINY, _TINY * 4
    cfg: dict[str, Any] = {
        "_class_name": "ControlNetModel",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "in_channels": 4,
        "conditioning_channels": 3,
        "block_out_channels": [ch],
        "down_block_types": ["DownBlock2D"],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "attention_head_dim": 2,
        "cross_attention_dim": ctx,
        "use_linear_projection": base != "sd-1",
        "conditioning_embedding_out_channels": [4],
    }
    sd = _StateDict(seed=13)
    sd.conv("conv_in", ch, 4)
    sd.linear("time_embedding.linear_1", temb, ch)
    sd.linear("time_embedding.linear_2", temb, temb)
    sd.conv("controlnet_cond_embedding.conv_in", 4, 3)
    sd.conv("controlnet_cond_embedding.conv_out", ch, 4)
    sd.resnet("down_blocks.0.resnets.0", ch, ch, temb)
    sd.conv("controlnet_down_blocks.0", ch, ch, 1)
    sd.conv("controlnet_down_blocks.1", ch, ch, 1)
    sd.transformer2d("mid_block.attentions.0", ch, ctx, cfg["use_linear_projection"])
    sd.resnet("mid_block.resnets.0", ch, ch, temb)
    sd.resnet("mid_block.resnets.1", ch, ch, temb)
    sd.conv("controlnet_mid_block", ch, ch, 1)
    _write_json(folder / "config.json", cfg)
    write_safetensors(folder / _weights_name(False), sd.tensors, {"format": "pt"})
    return folder


def write_clip_vision(folder: str | Path) -> Path:
    """A transformers ``CLIPVisionModelWithProjection`` folder (an IP-Adapter image encoder)."""
    folder = Path(folder)
    hidden = 16
    _write_json(folder / "config.json", {
        "architectures": ["CLIPVisionModelWithProjection"],
        "model_type": "clip_vision_model",
        "hidden_size": hidden,
        "intermediate_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 4,
        "projection_dim": _PROJECTION,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-05,
        "torch_dtype": "float32",
    })
    sd = _StateDict(seed=14)
    sd.rand("vision_model.embeddings.class_embedding", hidden)
    sd.rand("vision_model.embeddings.patch_embedding.weight", hidden, 3, 4, 4)
    sd.rand("vision_model.embeddings.position_embedding.weight", (8 // 4) ** 2 + 1, hidden)
    sd.norm("vision_model.pre_layrnorm", hidden)  # sic: transformers' spelling
    sd.clip_encoder("vision_model", hidden, 8)
    sd.norm("vision_model.post_layernorm", hidden)
    sd.linear("visual_projection", _PROJECTION, hidden, bias=False)
    write_safetensors(folder / "model.safetensors", sd.tensors, {"format": "pt"})
    return folder


def write_t2i_adapter(folder: str | Path, base: str = "sd-1") -> Path:
    """A diffusers ``T2IAdapter`` folder; ``adapter_type`` ``full_adapter`` (sd-1) or ``full_adapter_xl`` (sdxl)."""
    _check_base(base, ("sd-1", "sdxl"))
    folder = Path(folder)
    xl = base == "sdxl"
    channels = [_TINY, _TINY] if xl else [_TINY]
    factor = 16 if xl else 8
    cfg = {
        "_class_name": "T2IAdapter",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "in_channels": 3,
        "channels": channels,
        "num_res_blocks": 1,
        "downscale_factor": factor,
        "adapter_type": "full_adapter_xl" if xl else "full_adapter",
    }
    sd = _StateDict(seed=15)
    sd.conv("adapter.conv_in", _TINY, 3 * factor * factor)
    for i in range(len(channels)):
        sd.conv(f"adapter.body.{i}.resnets.0.block1", _TINY, _TINY, 3)
        sd.conv(f"adapter.body.{i}.resnets.0.block2", _TINY, _TINY, 1)
    _write_json(folder / "config.json", cfg)
    write_safetensors(folder / _weights_name(False), sd.tensors, {"format": "pt"})
    return folder


# --------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint((num << 3) | 2) + _varint(len(data)) + data


def _onnx_identity_model() -> bytes:
    """A valid ONNX ModelProto (protobuf, hand-encoded): y = Identity(x), x: float[1]."""
    dim = _field(1, _field(1, 1))  # TensorShapeProto.dim { dim_value: 1 }
    tensor_type = _field(1, 1) + _field(2, dim)  # elem_type FLOAT, shape
    type_proto = _field(1, tensor_type)

    def value_info(name: str) -> bytes:
        return _field(1, name) + _field(2, type_proto)

    node = _field(1, "x") + _field(2, "y") + _field(3, "identity") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "tiny") + _field(11, value_info("x")) + _field(12, value_info("y"))
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(2, "model-reconciler") + _field(7, graph) + _field(8, opset)


def write_onnx_pipeline(folder: str | Path, base: str = "sd-1", with_unet_config: bool = True) -> Path:
    """An ONNX Stable Diffusion folder (``OnnxStableDiffusionPipeline``): ``*/model.onnx`` per component.

    With ``with_unet_config`` the export's ``unet/config.json`` is written too, which is
    what tells an ONNX folder's base; without it a prober can only guess.
    """
    _check_base(base, ("sd-1", "sd-2"))
    folder = Path(folder)
    index: dict[str, Any] = {"_class_name": "OnnxStableDiffusionPipeline", "_diffusers_version": _DIFFUSERS_VERSION}
    model = _onnx_identity_model()
    for comp in ("text_encoder", "unet", "vae_decoder", "vae_encoder"):
        index[comp] = ["diffusers", "OnnxRuntimeModel"]
        (folder / comp).mkdir(parents=True, exist_ok=True)
        (folder / comp / "model.onnx").write_bytes(model)
    index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    index["scheduler"] = ["diffusers", "PNDMScheduler"]
    index["safety_checker"] = [None, None]
    index["feature_extractor"] = [None, None]
    index["requires_safety_checker"] = False
    write_clip_tokenizer(folder / "tokenizer")
    _write_json(folder / "scheduler" / "scheduler_config.json",
                {"_class_name": "PNDMScheduler", "_diffusers_version": _DIFFUSERS_VERSION, **_SCHEDULER,
                 "prediction_type": "v_prediction" if base == "sd-2" else "epsilon", "skip_prk_steps": True})
    if with_unet_config:
        _write_json(folder / "unet" / "config.json", _unet_config(base, 4, False))
    _write_json(folder / "model_index.json", index)
    return folder


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


def write_not_a_model(path: str | Path, kind: str) -> Path:
    """A file that is not a model, for bad-input tests.

    ``kind``: ``empty`` (zero bytes), ``text``, ``html`` (an error page, as a CDN serves one),
    ``garbage`` (random bytes), ``truncated_header`` (a safetensors file cut inside its JSON
    header), ``truncated_data`` (header intact, tensor bytes cut short), ``bad_header``
    (a header length that points past the end of the file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("These are my notes about models.\nNot a model.\n")
    elif kind == "html":
        path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
                        "<body><h1>Not Found</h1></body></html>\n")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(99).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind in ("truncated_header", "truncated_data", "bad_header"):
        write_lora_kohya(path)
        data = path.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        if kind == "truncated_header":
            data = data[: 8 + n // 2]
        elif kind == "truncated_data":
            data = data[: 8 + n + 10]
        else:
            data = struct.pack("<Q", len(data) * 4) + data[8:]
        path.write_bytes(data)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return path


def _malicious_pickle(marker: Path) -> bytes:
    """Protocol-2 pickle whose loading would call ``builtins.open(marker, "w")``."""
    s = str(marker).encode()
    return (b"\x80\x02" + b"cbuiltins\nopen\n" + b"X" + struct.pack("<I", len(s)) + s
            + b"X\x01\x00\x00\x00w" + b"\x86R.")


def write_malicious_pickle(path: str | Path, marker: str | Path, zip_format: bool = True) -> Path:
    """A ``.ckpt`` whose pickle calls code on load: it would create ``marker``.

    ``zip_format`` writes torch's zip container (``archive/data.pkl``), otherwise a bare
    pickle.  A safe loader refuses it; if ``marker`` exists afterwards, code ran.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _malicious_pickle(Path(marker))
    if zip_format:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", payload)
            zf.writestr("archive/byteorder", "little")
            zf.writestr("archive/version", "3\n")
    else:
        path.write_bytes(payload)
    return path
