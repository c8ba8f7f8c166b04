"""``probe_model``: what a model file or folder is, from its files alone.

No network, no loading of weights: safetensors files are identified from their header,
pickled checkpoints through a static opcode scan and torch's weights-only loader (torch
imported lazily, only for them), folders from their JSON configs.  A manifest's fields
(``overrides``) always win; each one that disagrees with the files gives a note.

Two kinds of failure:

* **not a model** (empty, text, HTML, garbage, a truncated safetensors file, a pickle that
  would run code): :class:`~reconciler.errors.InvalidModelError`, always, whatever the
  overrides say: such files are never registered;
* **not recognised** (a readable model file that no rule matches, or a field a rule cannot
  decide): :class:`ModelNotRecognizedError` (a subclass), unless the overrides supply what
  is missing; with ``type``, ``format`` and ``base`` all given it never raises.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from reconciler.configs import CONFIG_CLASSES, ModelConfigBase, config_class_for, validate_config
from reconciler.errors import (
    InvalidModelConfigException,
    InvalidModelError,
    OptionalDependencyError,
    SourceNotFoundError,
)
from reconciler.probe.pickle_scan import read_pickle_checkpoint
from reconciler.probe.rules import (
    Detection,
    ModelNotRecognizedError,
    StateDictInfo,
    cannot_tell,
    classify_folder,
    classify_state_dict,
)
from reconciler.probe.safetensors_header import looks_like_safetensors, read_safetensors_header
from reconciler.taxonomy import (
    BaseModelType,
    ModelFormat,
    ModelRepoVariant,
    ModelType,
    ModelVariantType,
    SchedulerPredictionType,
)

__all__ = ["ProbeResult", "probe_model", "read_checkpoint"]

_ENUM_FIELDS: dict[str, type[Enum]] = {
    "type": ModelType,
    "format": ModelFormat,
    "base": BaseModelType,
    "variant": ModelVariantType,
    "prediction_type": SchedulerPredictionType,
    "repo_variant": ModelRepoVariant,
}
_ALIASES = {"model_type": "type", "base_model": "base", "model_format": "format"}
# fields the caller gives separately; never part of ProbeResult.fields
_IDENTITY = {"name", "path"}

_HEAD = 512


@dataclass
class ProbeResult:
    """What a model is: config fields (enums for enum fields) and notes for the plan.

    ``fields`` holds ``type``, ``format``, ``base`` and the fields of that config class the
    probe or the overrides decided (``variant``, ``prediction_type``, ``upcast_attention``,
    ``repo_variant``, ``config``, ``image_encoder_model_id``, ...), never ``name``/``path``.
    ``notes`` has one line per override that disagrees with the files (plus any guess the
    prober had to make).
    """

    fields: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def type(self) -> ModelType:
        return self.fields["type"]

    @property
    def format(self) -> ModelFormat:
        return self.fields["format"]

    @property
    def base(self) -> BaseModelType:
        return self.fields["base"]

    def to_config(self, name: str, path: str | Path, **extra: Any) -> ModelConfigBase:
        """The validated config record for these fields plus ``name``, ``path`` and ``extra``."""
        return validate_config({**self.fields, **extra, "name": name, "path": str(path)})


# --------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------


def _sniff(path: Path) -> str:
    """``safetensors``, ``pickle`` or raise InvalidModelError/ModelNotRecognizedError for anything else."""
    size = os.path.getsize(path)
    if size == 0:
        raise InvalidModelError(f"{path}: not a model: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    if looks_like_safetensors(head, size):
        return "safetensors"
    if head[:4] == b"PK\x03\x04" and zipfile.is_zipfile(path):
        return "pickle"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in stripped:
        raise InvalidModelError(f"{path}: not a model: it is an HTML page (an error or login page "
                                "saved in place of the file?)")
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            is_text = True
        except UnicodeDecodeError as exc:
            is_text = exc.start >= len(head) - 4  # a multi-byte character cut by the read
        if is_text:
            raise InvalidModelError(f"{path}: not a model: it is a text file")
    if len(head) >= 8 and head[8:9] != b"{" and path.suffix == ".safetensors":
        raise InvalidModelError(f"{path}: not a valid safetensors file: it does not start with a header")
    raise cannot_tell(path, "not a safetensors file or a pickled checkpoint")


def read_checkpoint(path: str | Path) -> StateDictInfo:
    """Tensor names and shapes (plus metadata and scalars) of a single weights file.

    safetensors: from the header only.  Pickles: scanned for code, then read with torch's
    weights-only loader onto the meta device.
    """
    path = Path(path)
    kind = _sniff(path)
    if kind == "safetensors":
        header = read_safetensors_header(path)
        return StateDictInfo(shapes=header.shapes(), metadata=header.metadata)
    shapes, scalars = read_pickle_checkpoint(path)
    return StateDictInfo(shapes=shapes, scalars=scalars)


def _detect(path: Path) -> Detection:
    if path.is_dir():
        return classify_folder(path, read_checkpoint)
    info = read_checkpoint(path)
    if path.name.startswith("learned_embeds."):
        det = classify_state_dict(info, path)
        if det.type is not ModelType.TextualInversion:
            raise cannot_tell(path, "learned_embeds file without an embedding in it")
        return det
    return classify_state_dict(info, path)


# --------------------------------------------------------------------------------------
# overrides
# --------------------------------------------------------------------------------------


def _coerce(key: str, value: Any) -> Any:
    enum = _ENUM_FIELDS.get(key)
    if enum is None or value is None or isinstance(value, enum):
        return value
    try:
        return enum(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = ", ".join(str(e.value) for e in enum)  # type: ignore[attr-defined]
        raise InvalidModelConfigException(f"manifest sets {key}={value!r}: not one of {allowed}") from None


def _normalise(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Aliases resolved, a nested ``config:`` mapping flattened, enum values coerced; None values dropped."""
    out: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key == "config" and isinstance(value, Mapping):
            for k, v in _normalise(value).items():
                out.setdefault(k, v)
            continue
        key = _ALIASES.get(key, key)
        if value is None:
            continue
        out[key] = _coerce(key, value)
    return out


def _natural_format(type_: ModelType, is_dir: bool, probed: ModelFormat | None) -> ModelFormat:
    """The format to pair with an overridden type: the probed one if it fits, else the usual one."""
    if probed is not None and f"{type_.value}.{probed.value}" in CONFIG_CLASSES:
        return probed
    if is_dir:
        prefs = {ModelType.TextualInversion: ModelFormat.EmbeddingFolder, ModelType.IPAdapter: ModelFormat.InvokeAI,
                 ModelType.ONNX: ModelFormat.ONNX}
        return prefs.get(type_, ModelFormat.Diffusers)
    prefs = {ModelType.LoRA: ModelFormat.LyCORIS, ModelType.TextualInversion: ModelFormat.EmbeddingFile}
    fmt = prefs.get(type_, ModelFormat.Checkpoint)
    if f"{type_.value}.{fmt.value}" not in CONFIG_CLASSES:
        raise InvalidModelConfigException(f"type {type_.value} has no single-file format; set `format`")
    return fmt


def _show(value: Any) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def probe_model(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ProbeResult:
    """Identify the model at ``path`` (a file or a folder); ``overrides`` win over the files.

    ``overrides`` takes config field names (``type``, ``format``, ``base``, ``variant``,
    ``prediction_type``, ...; the aliases ``model_type``/``base_model``/``model_format``; a
    nested ``config`` mapping is flattened).  Raises SourceNotFoundError for a missing path,
    InvalidModelError for a file that is not a model, ModelNotRecognizedError (an
    InvalidModelError) when the type or a required field cannot be told and the overrides
    do not supply it, InvalidModelConfigException when the result does not validate.
    """
    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"{path}: no such file or directory")
    ov = _normalise(overrides)
    complete = all(k in ov for k in ("type", "format", "base"))
    try:
        det: Detection | None = _detect(path)
    except (ModelNotRecognizedError, OptionalDependencyError):
        if not complete:
            raise
        det = None

    notes: list[str] = []
    probed: dict[str, Any] = {}
    if det is not None:
        probed = {"type": det.type, "format": det.format, **det.fields}
        notes.extend(det.notes)
    type_: ModelType = ov.get("type", probed.get("type"))
    fmt: ModelFormat = ov.get("format") or _natural_format(type_, path.is_dir(),
                                                           probed.get("format") if det else None)
    cls = config_class_for(type_, fmt)
    same_kind = det is not None and det.type is type_ and det.format is fmt

    fields: dict[str, Any] = {"type": type_, "format": fmt}
    for key, value in probed.items():
        if key in cls.model_fields and key not in fields and (same_kind or key == "base"):
            fields[key] = value
    if det is not None and same_kind:
        missing = {k: why for k, why in det.unknown.items() if k not in ov}
    elif det is not None:
        missing = {k: why for k, why in det.unknown.items() if k == "base" and k not in ov}
    else:
        missing = {}
    if missing:
        key, why = next(iter(missing.items()))
        raise ModelNotRecognizedError(
            f"cannot tell the {key} of {path} (a {type_.value} {fmt.value}: {why}); set `{key}` in the manifest")

    for key, value in ov.items():
        if key in _IDENTITY:
            continue
        if key not in cls.model_fields:
            notes.append(f"manifest sets {key}={_show(value)}, which a {type_.value}.{fmt.value} model "
                         "does not have; ignored")
            continue
        if key in probed and probed[key] != value:
            notes.append(f"manifest sets {key}={_show(value)}; the files look like {_show(probed[key])}")
        fields[key] = value

    validate_config({**fields, "name": path.stem or path.name, "path": str(path)})
    return ProbeResult(fields=fields, notes=notes)
