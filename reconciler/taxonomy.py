"""Enumerations shared by every service (the seed's taxonomy, InvokeAI's values)."""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    """A str-valued enum whose str() is its value (so it prints and serialises cleanly)."""

    def __str__(self) -> str:
        return str(self.value)


class BaseModelType(_StrEnum):
    """The base model family a model is compatible with."""

    Any = "any"
    StableDiffusion1 = "sd-1"
    StableDiffusion2 = "sd-2"
    StableDiffusionXL = "sdxl"
    StableDiffusionXLRefiner = "sdxl-refiner"


class ModelType(_StrEnum):
    """What a model is used for."""

    Main = "main"
    Vae = "vae"
    LoRA = "lora"
    TextualInversion = "embedding"
    ControlNet = "controlnet"
    IPAdapter = "ip_adapter"
    CLIPVision = "clip_vision"
    T2IAdapter = "t2i_adapter"
    ONNX = "onnx"


class ModelFormat(_StrEnum):
    """How a model's weights are laid out on disk."""

    Checkpoint = "checkpoint"
    Diffusers = "diffusers"
    LyCORIS = "lycoris"
    EmbeddingFile = "embedding_file"
    EmbeddingFolder = "embedding_folder"
    InvokeAI = "invokeai"
    ONNX = "onnx"
    Olive = "olive"


class ModelVariantType(_StrEnum):
    """Variant of a main model, told apart by the UNet's input channels."""

    Normal = "normal"
    Inpaint = "inpaint"
    Depth = "depth"


class SubModelType(_StrEnum):
    """A component of a diffusers pipeline that the loader can load on its own."""

    UNet = "unet"
    TextEncoder = "text_encoder"
    TextEncoder2 = "text_encoder_2"
    Tokenizer = "tokenizer"
    Tokenizer2 = "tokenizer_2"
    Vae = "vae"
    VaeDecoder = "vae_decoder"
    VaeEncoder = "vae_encoder"
    Scheduler = "scheduler"
    SafetyChecker = "safety_checker"


class ModelRepoVariant(_StrEnum):
    """Which weights of a repository to take (diffusers' `variant`).

    The member names are the seed's (``ModelRepoVariant.FP16``, ``.OPENVINO``); the
    mixed-case names (``Default``, ``OpenVINO``, ``Flax``) stay as aliases of the same
    members.
    """

    DEFAULT = "default"
    FP16 = "fp16"
    FP32 = "fp32"
    ONNX = "onnx"
    OPENVINO = "openvino"
    FLAX = "flax"
    Default = "default"
    OpenVINO = "openvino"
    Flax = "flax"


class SchedulerPredictionType(_StrEnum):
    """What the scheduler's model predicts."""

    Epsilon = "epsilon"
    VPrediction = "v_prediction"
    Sample = "sample"


__all__ = [
    "BaseModelType",
    "ModelType",
    "ModelFormat",
    "ModelVariantType",
    "SubModelType",
    "ModelRepoVariant",
    "SchedulerPredictionType",
]
