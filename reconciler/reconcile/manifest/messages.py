"""Validation errors to messages: a pydantic ValidationError as one ``file:line:col: message``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from pydantic import AliasChoices, BaseModel, ValidationError

from reconciler.errors import ManifestError
from reconciler.reconcile.manifest.models import ModelSet
from reconciler.reconcile.manifest.yamlnodes import _Map, _Seq, clip_message, quoted_short

_ALIASES = {"model_type": "type", "base_model": "base", "model_format": "format"}


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    keys: list[str] = []
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            keys.extend(str(c) for c in alias.choices)
        else:
            keys.append(name)
    return keys


def _model_at(loc: Sequence[Any]) -> Optional[type[BaseModel]]:
    """The pydantic model whose fields the last element of ``loc`` (in a ModelSet) names."""
    model: Any = ModelSet
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if isinstance(model, type) else None
        if info is None:
            return None
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model if isinstance(model, type) else None


def _enum_at(loc: Sequence[Any]) -> Optional[type[Enum]]:
    """The enum type of the field that ``loc`` names, if it is one."""
    parent = _model_at(loc)
    if parent is None or not loc:
        return None
    name = _ALIASES.get(str(loc[-1]), str(loc[-1]))
    info = parent.model_fields.get(name)
    if info is None:
        return None
    for candidate in (info.annotation, *getattr(info.annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return candidate
    return None


def _describe(error: dict[str, Any]) -> str:
    """One line for one pydantic error, naming the field and (for enums) the allowed values."""
    loc = error.get("loc", ())
    key = str(loc[-1]) if loc else ""
    label = f"{loc[-2]}[{loc[-1]}]" if len(loc) >= 2 and isinstance(loc[-1], int) else key
    kind = error.get("type", "")
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at(loc)
        if key in _ALIASES:
            return f"{quoted_short(key)} is an alias of {_ALIASES[key]!r}; give only one of them"
        message = f"unknown field {quoted_short(key)}"
        if parent is not None:
            allowed = _allowed_keys(parent)
            close = difflib.get_close_matches(key, allowed, n=1)
            message += f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
        return message
    if kind == "missing":
        return f"missing required field {quoted_short(key)}"
    if kind == "enum":
        enum = _enum_at(loc)
        allowed = ", ".join(str(v.value) for v in enum) if enum else error.get("ctx", {}).get("expected", "")
        return f"{label}: invalid value {quoted_short(value)} (allowed: {allowed})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{label}: expected a mapping, got {quoted_short(value)}"
    if kind == "list_type":
        return f"{label}: expected a list, got {quoted_short(value)}"
    if kind == "string_type" and value is None:
        return f"{label} is empty"
    if kind == "string_type" and isinstance(value, (int, float, bool)):
        return f"{label}: expected a string, got {quoted_short(value)} (quote it in YAML)"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{label}: {message}" if label and not message.startswith(key) else message


def _locate(data: Any, loc: Sequence[Any], kind: str) -> Optional[tuple[int, int]]:
    """Position of the item that ``loc`` names: a key for unknown fields, the parent mapping
    for missing ones, the value otherwise."""
    node = data
    pos: Optional[tuple[int, int]] = getattr(data, "pos", None)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, _Map) and part in node:
            pos = node.keys_at[part] if last and kind == "extra_forbidden" else node.values_at[part]
            node = node[part]
        elif isinstance(node, _Map) and isinstance(part, str):
            alias = next((a for a, f in _ALIASES.items() if f == part and a in node), None)
            if alias is None:
                return node.pos if last else pos
            pos, node = node.values_at[alias], node[alias]
        elif isinstance(node, _Seq) and isinstance(part, int) and part < len(node):
            pos, node = node.items_at[part], node[part]
        else:
            return pos
    return pos


def _validation_error(
    exc: ValidationError, data: Any, file: Path, prefix: Sequence[Any] = ()
) -> ManifestError:
    """The earliest-written error of a ValidationError as a ManifestError."""
    best: Optional[tuple[tuple[int, int], str]] = None
    for error in exc.errors():
        loc = (*prefix, *error.get("loc", ()))
        pos = _locate(data, error.get("loc", ()), error.get("type", "")) or (1, 1)
        message = _describe({**error, "loc": loc})
        if best is None or pos < best[0]:
            best = (pos, message)
    assert best is not None
    return ManifestError(clip_message(best[1]), file, *best[0])
