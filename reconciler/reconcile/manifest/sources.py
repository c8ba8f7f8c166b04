"""An entry's source: parse the string and lay the entry's keys (then the defaults) over its parts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from reconciler.errors import SourceError
from reconciler.reconcile.manifest.fields import EntryDefaults
from reconciler.reconcile.manifest.yamlnodes import quoted_short
from reconciler.sources import (
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    ModelSource,
    URLModelSource,
    parse_source,
)
from reconciler.sources.base import is_weights_file

if TYPE_CHECKING:
    from reconciler.reconcile.manifest.models import ModelEntry


class _FieldError(SourceError):
    """A SourceError that belongs to one of the entry's fields."""

    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def _split_subfolder(value: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    if value is None:
        return None, None
    return (None, value) if is_weights_file(value) else (value, None)


def _resolve_source(
    entry: ModelEntry,
    defaults: Optional[EntryDefaults],
    base_dir: Path,
    civitai_hosts: Iterable[str] | None,
) -> tuple[ModelSource, dict[str, Any]]:
    """Parse the entry's source and lay its keys (then the defaults) over the string's parts.

    Returns the source and the effective ``revision``/``variant``/``subfolder``/``inplace``.
    """
    try:
        src = parse_source(entry.source, base_dir=base_dir, civitai_hosts=civitai_hosts)
    except SourceError as exc:
        raise _FieldError(str(exc), "source") from None
    given = entry.model_fields_set

    if isinstance(src, HFModelSource):
        if "inplace" in given and entry.inplace:
            raise _FieldError("inplace applies only to local sources", "inplace")
        d = defaults or EntryDefaults()
        variant = _pick("variant", entry.variant, src.variant, d.variant, entry.source)
        path = _pick("subfolder", entry.subfolder, src.file or src.subfolder, d.subfolder, entry.source)
        revision = _pick("revision", entry.revision, src.revision, d.revision, entry.source)
        if (variant, path, revision) != (src.variant, src.file or src.subfolder, src.revision):
            subfolder, file = _split_subfolder(path)
            src = HFModelSource(
                repo_id=src.repo_id, variant=variant, subfolder=subfolder, file=file, revision=revision
            )
        return src, {"variant": variant, "subfolder": path, "revision": revision, "inplace": False}

    for key in ("variant", "subfolder", "revision"):
        if getattr(entry, key) is not None:
            raise _FieldError(f"{key} applies only to Hugging Face sources, not to {quoted_short(entry.source)}", key)
    if isinstance(src, LocalModelSource):
        inplace = entry.inplace if "inplace" in given or defaults is None else defaults.inplace
        if inplace:
            src = src.model_copy(update={"inplace": True})
        return src, {"variant": None, "subfolder": None, "revision": None, "inplace": inplace}
    assert isinstance(src, (URLModelSource, CivitaiModelSource))
    if entry.inplace:
        raise _FieldError("inplace applies only to local sources", "inplace")
    return src, {"variant": None, "subfolder": None, "revision": None, "inplace": False}


def _pick(key: str, from_key: Any, from_string: Any, from_defaults: Any, source: str) -> Any:
    if from_key is not None and from_string is not None and from_key != from_string:
        raise _FieldError(
            f"{key} {quoted_short(str(from_key))} conflicts with {quoted_short(str(from_string))} in source {quoted_short(source)}", key
        )
    for value in (from_key, from_string, from_defaults):
        if value is not None:
            return value
    return None
