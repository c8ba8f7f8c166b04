"""Model config records: the seed's pydantic hierarchy plus the reconciler's own fields.

A plain dict validates to the right class through :data:`AnyModelConfig`, a union
discriminated by ``"{type}.{format}"``.  The seed document's field names ``model_type``,
``base_model`` and ``model_format`` are accepted on input as aliases of ``type``, ``base``
and ``format``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from reconciler.taxonomy import (
    BaseModelType,
    ModelFormat,
    ModelRepoVariant,
    ModelType,
    ModelVariantType,
    SchedulerPredictionType,
)

#: The seed document's field names and the fields they stand for.
SEED_FIELD_ALIASES: dict[str, str] = {"model_type": "type", "base_model": "base", "model_format": "format"}


def canonical_field_names(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with the seed's field names (``base_model``...) renamed to ours.

    Needed wherever a caller's overrides are merged into other values (a sparse update, the
    prober's fields): ``{"base_model": "sd-2"}`` merged beside a probed ``base`` would
    otherwise leave both keys, and validation would refuse the extra one.
    """
    return {SEED_FIELD_ALIASES.get(k, k): v for k, v in data.items()}


def new_model_key() -> str:
    """A fresh record key: 32 random hex characters."""
    return secrets.token_hex(16)


class ModelConfigBase(BaseModel):
    """Fields every model record has."""

    model_config = ConfigDict(
        use_enum_values=False,
        populate_by_name=True,
        validate_assignment=True,
        extra="forbid",
        protected_namespaces=(),
    )

    key: str = Field(default_factory=new_model_key, description="Unique 32-hex-character id made at install")
    name: str = Field(description="Human name of the model (not unique across types/bases)")
    type: ModelType = Field(validation_alias=AliasChoices("type", "model_type"))
    format: ModelFormat = Field(validation_alias=AliasChoices("format", "model_format"))
    base: BaseModelType = Field(validation_alias=AliasChoices("base", "base_model"))
    path: str = Field(description="Location on disk; relative paths are relative to models_dir")
    hash: Optional[str] = Field(default=None, description="imohash-based fingerprint of the files at install")
    description: Optional[str] = None
    source: Optional[str] = Field(default=None, description="Canonical source string the model came from")
    tags: list[str] = Field(default_factory=list)
    last_modified: Optional[float] = Field(default_factory=time.time)
    source_api_response: Optional[str] = Field(default=None, description="Raw JSON of the source's API")
    # --- the reconciler's own fields ---
    managed_by: Optional[str] = Field(default=None, description="ModelSet that declared this model; None = unmanaged")
    manifest_digest: Optional[str] = Field(default=None, description="Digest of the manifest entry it was made from")
    inplace: bool = Field(default=False, description="Registered where it lies; its files are never deleted")
    source_fingerprint: Optional[str] = Field(
        default=None, description="Cheap fingerprint of a local source at install time (size/mtime)"
    )
    source_revision: Optional[str] = Field(default=None, description="Resolved revision (commit sha, ETag, version)")
    # --- warm-up (`warm: true`): the last load through the ModelLoadService ---
    warm_state: Optional[Literal["ok", "failed"]] = Field(default=None, description="Result of the last warm-up")
    warmed_at: Optional[float] = Field(default=None, description="When the last warm-up ran (epoch seconds)")
    warm_load_time_s: Optional[float] = Field(default=None, description="Seconds the last warm-up's loads took")
    warm_hash: Optional[str] = Field(default=None, description="The record's hash when it was last warmed")
    warm_error: Optional[str] = Field(default=None, description="The loader's message when the warm-up failed")

    # --- the seed's field names, for reading (they are accepted as aliases on input) ---
    @property
    def model_type(self) -> ModelType:
        """The seed's name for :attr:`type`."""
        return self.type

    @property
    def model_format(self) -> ModelFormat:
        """The seed's name for :attr:`format`."""
        return self.format

    @property
    def base_model(self) -> BaseModelType:
        """The seed's name for :attr:`base`."""
        return self.base


class CheckpointConfigBase(ModelConfigBase):
    """A single-file checkpoint."""

    format: Literal[ModelFormat.Checkpoint] = Field(
        default=ModelFormat.Checkpoint, validation_alias=AliasChoices("format", "model_format")
    )
    config: Optional[str] = Field(default=None, description="Path to the checkpoint's config file")


class DiffusersConfigBase(ModelConfigBase):
    """A diffusers-format folder."""

    format: Literal[ModelFormat.Diffusers] = Field(
        default=ModelFormat.Diffusers, validation_alias=AliasChoices("format", "model_format")
    )
    repo_variant: Optional[ModelRepoVariant] = ModelRepoVariant.DEFAULT


class MainConfigBase(ModelConfigBase):
    """Fields of main (pipeline) models."""

    type: Literal[ModelType.Main] = Field(default=ModelType.Main, validation_alias=AliasChoices("type", "model_type"))
    vae: Optional[str] = Field(default=None, description="A VAE to use instead of the built-in one")
    variant: ModelVariantType = ModelVariantType.Normal
    prediction_type: SchedulerPredictionType = SchedulerPredictionType.Epsilon
    upcast_attention: bool = False


class MainCheckpointConfig(CheckpointConfigBase, MainConfigBase):
    """A main model in one checkpoint file (.safetensors, .ckpt)."""

    type: Literal[ModelType.Main] = Field(default=ModelType.Main, validation_alias=AliasChoices("type", "model_type"))


class MainDiffusersConfig(DiffusersConfigBase, MainConfigBase):
    """A main model as a diffusers pipeline folder."""

    type: Literal[ModelType.Main] = Field(default=ModelType.Main, validation_alias=AliasChoices("type", "model_type"))


class ONNXSD2Config(MainConfigBase):
    """An ONNX pipeline folder (the seed's ONNXSD2Config)."""

    type: Literal[ModelType.ONNX] = Field(default=ModelType.ONNX, validation_alias=AliasChoices("type", "model_type"))
    format: Literal[ModelFormat.ONNX] = Field(
        default=ModelFormat.ONNX, validation_alias=AliasChoices("format", "model_format")
    )
    repo_variant: Optional[ModelRepoVariant] = ModelRepoVariant.DEFAULT


class ONNXOliveConfig(ONNXSD2Config):
    """An ONNX pipeline optimised by Olive."""

    format: Literal[ModelFormat.Olive] = Field(  # type: ignore[assignment]
        default=ModelFormat.Olive, validation_alias=AliasChoices("format", "model_format")
    )


class VAECheckpointConfig(CheckpointConfigBase):
    """A VAE in one file."""

    type: Literal[ModelType.Vae] = Field(default=ModelType.Vae, validation_alias=AliasChoices("type", "model_type"))


class VAEDiffusersConfig(DiffusersConfigBase):
    """A VAE as a diffusers folder."""

    type: Literal[ModelType.Vae] = Field(default=ModelType.Vae, validation_alias=AliasChoices("type", "model_type"))


class LoRALyCORISConfig(ModelConfigBase):
    """A LoRA / LyCORIS in one file (kohya or similar key layout)."""

    type: Literal[ModelType.LoRA] = Field(default=ModelType.LoRA, validation_alias=AliasChoices("type", "model_type"))
    format: Literal[ModelFormat.LyCORIS] = Field(
        default=ModelFormat.LyCORIS, validation_alias=AliasChoices("format", "model_format")
    )


class LoRADiffusersConfig(ModelConfigBase):
    """A LoRA in diffusers / PEFT layout."""

    type: Literal[ModelType.LoRA] = Field(default=ModelType.LoRA, validation_alias=AliasChoices("type", "model_type"))
    format: Literal[ModelFormat.Diffusers] = Field(
        default=ModelFormat.Diffusers, validation_alias=AliasChoices("format", "model_format")
    )


class TextualInversionFileConfig(ModelConfigBase):
    """A textual-inversion embedding in one file."""

    type: Literal[ModelType.TextualInversion] = Field(
        default=ModelType.TextualInversion, validation_alias=AliasChoices("type", "model_type")
    )
    format: Literal[ModelFormat.EmbeddingFile] = Field(
        default=ModelFormat.EmbeddingFile, validation_alias=AliasChoices("format", "model_format")
    )


class TextualInversionFolderConfig(ModelConfigBase):
    """A textual-inversion embedding as a folder (learned_embeds.*)."""

    type: Literal[ModelType.TextualInversion] = Field(
        default=ModelType.TextualInversion, validation_alias=AliasChoices("type", "model_type")
    )
    format: Literal[ModelFormat.EmbeddingFolder] = Field(
        default=ModelFormat.EmbeddingFolder, validation_alias=AliasChoices("format", "model_format")
    )


class ControlNetCheckpointConfig(CheckpointConfigBase):
    """A ControlNet in one file."""

    type: Literal[ModelType.ControlNet] = Field(
        default=ModelType.ControlNet, validation_alias=AliasChoices("type", "model_type")
    )


class ControlNetDiffusersConfig(DiffusersConfigBase):
    """A ControlNet as a diffusers folder."""

    type: Literal[ModelType.ControlNet] = Field(
        default=ModelType.ControlNet, validation_alias=AliasChoices("type", "model_type")
    )


class IPAdapterInvokeAIConfig(ModelConfigBase):
    """An IP-Adapter in InvokeAI's folder layout (ip_adapter.bin + image_encoder.txt)."""

    type: Literal[ModelType.IPAdapter] = Field(
        default=ModelType.IPAdapter, validation_alias=AliasChoices("type", "model_type")
    )
    format: Literal[ModelFormat.InvokeAI] = Field(
        default=ModelFormat.InvokeAI, validation_alias=AliasChoices("format", "model_format")
    )
    image_encoder_model_id: Optional[str] = None


class IPAdapterCheckpointConfig(CheckpointConfigBase):
    """An IP-Adapter in one file."""

    type: Literal[ModelType.IPAdapter] = Field(
        default=ModelType.IPAdapter, validation_alias=AliasChoices("type", "model_type")
    )


class CLIPVisionDiffusersConfig(DiffusersConfigBase):
    """A CLIP vision image encoder folder."""

    type: Literal[ModelType.CLIPVision] = Field(
        default=ModelType.CLIPVision, validation_alias=AliasChoices("type", "model_type")
    )


class T2IAdapterDiffusersConfig(DiffusersConfigBase):
    """A T2I adapter folder."""

    type: Literal[ModelType.T2IAdapter] = Field(
        default=ModelType.T2IAdapter, validation_alias=AliasChoices("type", "model_type")
    )


class FileState(BaseModel):
    """One file of an installed model as last seen: enough to notice drift without rehashing.

    ``path`` is relative to the model's own path (``""`` for a single-file model).  A file
    whose size and mtime_ns are unchanged is taken as unchanged; otherwise its imohash (and,
    when recorded, its sha256) decide.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int
    mtime_ns: int
    imohash: str
    sha256: Optional[str] = None


# Seed-compatible short names.
IPAdapterConfig = IPAdapterInvokeAIConfig
LoRAConfig = LoRALyCORISConfig
CheckpointConfig = CheckpointConfigBase
MainConfig = MainConfigBase

CONFIG_CLASSES: dict[str, type[ModelConfigBase]] = {
    "main.checkpoint": MainCheckpointConfig,
    "main.diffusers": MainDiffusersConfig,
    "onnx.onnx": ONNXSD2Config,
    "onnx.olive": ONNXOliveConfig,
    "vae.checkpoint": VAECheckpointConfig,
    "vae.diffusers": VAEDiffusersConfig,
    "lora.lycoris": LoRALyCORISConfig,
    "lora.diffusers": LoRADiffusersConfig,
    "embedding.embedding_file": TextualInversionFileConfig,
    "embedding.embedding_folder": TextualInversionFolderConfig,
    "controlnet.checkpoint": ControlNetCheckpointConfig,
    "controlnet.diffusers": ControlNetDiffusersConfig,
    "ip_adapter.invokeai": IPAdapterInvokeAIConfig,
    "ip_adapter.checkpoint": IPAdapterCheckpointConfig,
    "clip_vision.diffusers": CLIPVisionDiffusersConfig,
    "t2i_adapter.diffusers": T2IAdapterDiffusersConfig,
}


def _enum_value(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


def config_discriminator(value: Any) -> Optional[str]:
    """``"{type}.{format}"`` of a config object or dict (aliases accepted)."""
    if isinstance(value, dict):
        type_ = value.get("type", value.get("model_type"))
        format_ = value.get("format", value.get("model_format"))
    else:
        type_ = getattr(value, "type", None)
        format_ = getattr(value, "format", None)
    if type_ is None or format_ is None:
        return None
    return f"{_enum_value(type_)}.{_enum_value(format_)}"


AnyModelConfig = Annotated[
    Union[tuple(Annotated[cls, Tag(tag)] for tag, cls in CONFIG_CLASSES.items())],  # type: ignore[misc]
    Discriminator(
        config_discriminator,
        custom_error_type="invalid_model_kind",
        custom_error_message="no model config class for this type.format combination",
    ),
]

AnyModelConfigValidator: TypeAdapter[Any] = TypeAdapter(AnyModelConfig)


def config_class_for(type_: ModelType | str, format_: ModelFormat | str) -> type[ModelConfigBase]:
    """The config class for a type and format; raises InvalidModelConfigException if none."""
    from reconciler.errors import InvalidModelConfigException

    tag = f"{_enum_value(type_)}.{_enum_value(format_)}"
    try:
        return CONFIG_CLASSES[tag]
    except KeyError:
        raise InvalidModelConfigException(f"no model config class for type.format {tag!r}") from None


def validate_config(data: dict[str, Any] | ModelConfigBase) -> ModelConfigBase:
    """Validate a dict (or re-validate a config) into the right config class.

    Raises InvalidModelConfigException with pydantic's message on failure.
    """
    from reconciler.errors import InvalidModelConfigException

    if isinstance(data, ModelConfigBase):
        data = data.model_dump()
    try:
        return AnyModelConfigValidator.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidModelConfigException(
            f"invalid model config{f' at {where}' if where else ''}: {first.get('msg')}"
        ) from exc


__all__ = [
    "ModelConfigBase",
    "FileState",
    "CheckpointConfigBase",
    "DiffusersConfigBase",
    "MainConfigBase",
    "MainCheckpointConfig",
    "MainDiffusersConfig",
    "ONNXSD2Config",
    "ONNXOliveConfig",
    "VAECheckpointConfig",
    "VAEDiffusersConfig",
    "LoRALyCORISConfig",
    "LoRADiffusersConfig",
    "TextualInversionFileConfig",
    "TextualInversionFolderConfig",
    "ControlNetCheckpointConfig",
    "ControlNetDiffusersConfig",
    "IPAdapterInvokeAIConfig",
    "IPAdapterCheckpointConfig",
    "CLIPVisionDiffusersConfig",
    "T2IAdapterDiffusersConfig",
    "IPAdapterConfig",
    "LoRAConfig",
    "CheckpointConfig",
    "MainConfig",
    "CONFIG_CLASSES",
    "AnyModelConfig",
    "AnyModelConfigValidator",
    "config_class_for",
    "config_discriminator",
    "canonical_field_names",
    "new_model_key",
    "SEED_FIELD_ALIASES",
    "validate_config",
]
