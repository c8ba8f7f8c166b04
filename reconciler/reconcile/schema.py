"""JSON Schemas of the reconciler's files, generated from the pydantic models.

``schemas/`` in the repository holds their output (``reconciler schema`` rewrites it) and a
test fails when it is stale.  To add a schema, add one line to :data:`SCHEMAS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.reconcile.manifest import API_VERSION, EntryDefaults, ModelEntry, ModelSet
from reconciler.reconcile.manifest.views import ModelView

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Input aliases of entry fields (the seed document's names) that pydantic's schema omits.
_ENTRY_ALIASES = {"model_type": "type", "base_model": "base", "model_format": "format"}


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (a ModelSet)."""
    schema = ModelSet.model_json_schema(mode="validation")
    defs = schema.get("$defs", {})
    for model in (ModelEntry, EntryDefaults):
        definition = defs[model.__name__]
        properties = definition["properties"]
        for alias, name in _ENTRY_ALIASES.items():
            properties[alias] = {**properties[name], "description": f"Alias of '{name}' (the seed's name)"}
        # `type` and `model_type` name one field: give at most one of each pair.
        definition["not"] = {"anyOf": [{"required": [name, alias]} for alias, name in _ENTRY_ALIASES.items()]}
    view = ModelView.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs.update(view.pop("$defs", {}))
    defs["ModelView"] = view
    model_set = {k: v for k, v in schema.items() if k != "$defs"}
    defs["ModelSet"] = model_set
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://model-reconciler.invalid/schemas/manifest.schema.json",
        "$defs": defs,
        "type": "object",
        "properties": {
            "apiVersion": model_set["properties"]["apiVersion"],
            "kind": {"enum": ["ModelSet", "ModelView"], "title": "Kind"},
        },
        "required": ["apiVersion", "kind"],
        "if": {"properties": {"kind": {"const": "ModelView"}}},
        "then": {"$ref": "#/$defs/ModelView"},
        "else": {"$ref": "#/$defs/ModelSet"},
        "title": "ModelSet or ModelView",
        "description": f"One document of a model-reconciler manifest (apiVersion {API_VERSION}): a ModelSet "
        "(models to install) or a ModelView (where they appear for an app); a file may hold several, "
        "separated by '---'.",
    }


#: File name -> function making its schema.  One line per schema.
def _lock_json_schema() -> dict[str, Any]:
    from reconciler.reconcile.lockfile import lock_json_schema

    return lock_json_schema()


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "manifest.schema.json": manifest_json_schema,
    "lock.schema.json": _lock_json_schema,
}


def render_schema(schema: dict[str, Any]) -> str:
    """Stable text of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every schema of :data:`SCHEMAS` into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in SCHEMAS.items():
        path = out_dir / name
        text = render_schema(make())
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


__all__ = ["SCHEMAS", "manifest_json_schema", "render_schema", "write_schemas"]
