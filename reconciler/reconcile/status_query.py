"""`status` questions: filter the observed models, and one model in detail.

The detail of one model is every record field, its files (size, sha256), its metadata from
the metadata store (tags, author, licence, source page), the last warm-up, and where it is
linked by views (the links the record store keeps for ModelView documents).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

from reconciler.reconcile.observe import ObservedModel


def filter_observed(
    observed: Iterable[ObservedModel],
    *,
    set_name: Optional[str] = None,
    tags: Sequence[str] = (),
    model_type: Optional[str] = None,
    base: Optional[str] = None,
    state: Optional[str] = None,
) -> list[ObservedModel]:
    """The models matching every filter given (``tags``: all of them)."""
    out = []
    for item in observed:
        rec = item.record
        if set_name is not None and (rec.managed_by or "") != set_name:
            continue
        if tags and not set(tags) <= set(getattr(rec, "tags", None) or ()):
            continue
        if model_type is not None and rec.type.value != model_type:
            continue
        if base is not None and rec.base.value != base:
            continue
        if state is not None and item.state.value != state:
            continue
        out.append(item)
    return out


def _source_page(metadata: Any) -> Optional[str]:
    kind = getattr(metadata, "type", None)
    if kind == "huggingface":
        return f"https://huggingface.co/{metadata.id}"
    if kind == "civitai":
        model_id = getattr(metadata, "id", None)
        version = getattr(metadata, "version_id", None)
        if model_id is not None:
            return f"https://civitai.com/models/{model_id}" + (f"?modelVersionId={version}" if version else "")
    return None


def metadata_document(metadata_store: Any, key: str) -> Optional[dict[str, Any]]:
    """The metadata store's view of one model (None when it keeps none for it)."""
    if metadata_store is None:
        return None
    try:
        metadata = metadata_store.get_metadata(key)
    except Exception:  # UnknownModelException: no metadata for this model
        return None
    license_ = getattr(metadata, "license", None)
    if license_ is None and hasattr(metadata, "tag_dict"):
        license_ = metadata.tag_dict.get("license")
    return {
        "source_type": getattr(metadata, "type", None),
        "name": metadata.name,
        "author": metadata.author or None,
        "tags": sorted(metadata.tags),
        "license": license_,
        "source_page": _source_page(metadata),
    }


def view_links(services: Any, record: Any) -> list[dict[str, Any]]:
    """Where views link ``record``: each recorded link's view, path and mode."""
    return [{"view": link.view, "path": link.path, "mode": link.mode}
            for link in services.store.view_links() if link.model_key == record.key]


def model_detail(services: Any, item: ObservedModel, warm: Optional[dict[str, Any]]) -> dict[str, Any]:
    """One model in detail, JSON-ready."""
    record = item.record.model_dump(mode="json")
    record.pop("source_api_response", None)  # the raw hub answer: long, and already summarised below
    return {
        "name": item.record.name,
        "state": item.state.value,
        "files_state": item.files_state.value,
        "record": record,
        "files": [
            {"path": f.path or item.record.path, "size": f.size, "sha256": f.sha256,
             "state": "missing" if f.path in item.missing_files
             else "changed" if f.path in item.changed_files else "ok"}
            for f in item.files
        ],
        "metadata": metadata_document(services.installer.metadata_store, item.record.key),
        "warm": warm,
        "views": view_links(services, item.record),
    }
