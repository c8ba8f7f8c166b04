"""Helpers both record-store backends share: building, merging and decoding records.

A *record* here is the JSON-mode dump of a config (enums as their string values); that is
what the SQL backend keeps in its ``config`` column and the YAML backend under ``models:``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from reconciler.configs import (
    AnyModelConfigValidator,
    FileState,
    ModelConfigBase,
    canonical_field_names,
    config_class_for,
    validate_config,
)
from reconciler.errors import InvalidModelConfigException


def enum_str(value: Any) -> str | None:
    """The string value of an enum member (or of a plain string); None stays None."""
    if value is None:
        return None
    return str(value.value if hasattr(value, "value") else value)


def config_for_add(key: str, config: ModelConfigBase | dict[str, Any]) -> ModelConfigBase:
    """Validate ``config`` into its config class with ``key`` as its key."""
    if isinstance(config, ModelConfigBase):
        data = config.model_dump()
    elif isinstance(config, dict):
        data = canonical_field_names(config)
    else:
        raise InvalidModelConfigException(f"a model config must be a dict or a config object, not {type(config)}")
    data["key"] = key
    return validate_config(data)


def config_for_update(
    key: str, existing: dict[str, Any], config: ModelConfigBase | dict[str, Any]
) -> ModelConfigBase:
    """The record that results from applying ``config`` to the stored record ``existing``.

    A config object replaces the record whole (keeping ``key``).  A dict is sparse: it is
    merged into the record and the result re-validated.  When the merge changes type or
    format, the record's class may change; stored fields the new class lacks are dropped,
    while a field the caller names explicitly is always kept (so a bad one is reported).
    """
    if isinstance(config, ModelConfigBase):
        return config_for_add(key, config)
    if not isinstance(config, dict):
        raise InvalidModelConfigException(f"a model config must be a dict or a config object, not {type(config)}")
    updates = canonical_field_names(config)
    if updates.get("key", key) != key:
        raise InvalidModelConfigException(f"update_model cannot change a record's key ({key} -> {updates['key']})")
    merged = {**existing, **updates, "key": key}
    target = config_class_for(str(merged.get("type")), str(merged.get("format")))
    kept = {k: v for k, v in merged.items() if k in target.model_fields or k in updates}
    return validate_config(kept)


def to_record(config: ModelConfigBase) -> dict[str, Any]:
    """The JSON-mode dump that a backend stores."""
    return config.model_dump(mode="json")


def decode_record(data: dict[str, Any] | str | bytes) -> ModelConfigBase:
    """A stored record (dict or JSON text) back to its validated config class."""
    try:
        if isinstance(data, (str, bytes)):
            return AnyModelConfigValidator.validate_json(data)
        return AnyModelConfigValidator.validate_python(data)
    except ValidationError as exc:
        key = data.get("key") if isinstance(data, dict) else None
        raise InvalidModelConfigException(f"stored record {key or ''} is invalid: {exc.errors()[0].get('msg')}") from exc


def coerce_files(files: Sequence[FileState | dict[str, Any]]) -> list[FileState]:
    """Validate a model's file states; paths must be distinct."""
    out = [f if isinstance(f, FileState) else FileState.model_validate(f) for f in files]
    seen: set[str] = set()
    for state in out:
        if state.path in seen:
            raise InvalidModelConfigException(f"file state path {state.path!r} given twice")
        seen.add(state.path)
    return out


def tag_list(tags: Iterable[str] | str) -> list[str]:
    """Distinct tags in order; a bare string is one tag, not a sequence of characters."""
    if isinstance(tags, str):
        return [tags]
    return list(dict.fromkeys(tags))


__all__ = [
    "coerce_files",
    "config_for_add",
    "config_for_update",
    "decode_record",
    "enum_str",
    "tag_list",
    "to_record",
]
