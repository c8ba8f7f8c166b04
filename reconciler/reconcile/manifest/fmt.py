"""``reconciler fmt``: rewrite manifests in one canonical form, comments and entry order kept.

The canonical form (ruamel.yaml round-trip, so comments, quoting and flow lists survive):

- document keys in the order ``apiVersion, kind, metadata, spec``; ``metadata``:
  ``name, labels``; a ModelSet's ``spec``: ``prune, defaults, models``;
- the keys of each entry (and of ``spec.defaults``) in :data:`ENTRY_KEY_ORDER`;
- keys the order does not know (a later field, another kind's keys) follow the known ones
  in the order they were written; the order of the entries themselves never changes;
- two-space indent, sequences indented under their key (``models:\\n  - name: x``);
- one blank line, then ``---``, between documents; no trailing spaces; one final newline.

A file is first read the way every command reads it (same limits, same ``file:line:col``
error), so invalid YAML is reported as usual and the file is left untouched.  A full-line
comment stays attached to the key it follows (ruamel.yaml's model of comments): a comment
written above a key that moves, moves with the key before it.
"""

from __future__ import annotations

import difflib
import io
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.reconcile.manifest.loader import _discover, _read_text
from reconciler.reconcile.manifest.yamlnodes import load_documents

DOCUMENT_KEY_ORDER = ("apiVersion", "kind", "metadata", "spec")
METADATA_KEY_ORDER = ("name", "labels")
SPEC_KEY_ORDER = ("prune", "defaults", "models")
ENTRY_KEY_ORDER = (
    "name",
    "source",
    "revision",
    "variant",
    "subfolder",
    "sha256",
    "type",
    "base",
    "format",
    "inplace",
    "warm",
    "description",
    "tags",
    "config",
)
"""The canonical order of an entry's keys (the documented order; aliases sort as their field)."""

_ALIASES = {"model_type": "type", "base_model": "base", "model_format": "format"}


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long strings
    yaml.explicit_start = False
    return yaml


def _reorder(mapping: Any, order: Sequence[str]) -> None:
    """Put ``mapping``'s known keys first, in ``order``; others keep their relative order."""
    if not hasattr(mapping, "move_to_end"):
        return
    rank = {key: i for i, key in enumerate(order)}

    def position(item: tuple[int, Any]) -> tuple[int, int]:
        index, key = item
        known = rank.get(_ALIASES.get(key, key)) if isinstance(key, str) else None
        return (known, 0) if known is not None else (len(order), index)

    keys = [key for _, key in sorted(enumerate(list(mapping)), key=position)]
    if keys == list(mapping):
        return
    for key in keys:
        mapping.move_to_end(key)


def _canonical_document(doc: Any) -> None:
    if not isinstance(doc, dict):
        return
    _reorder(doc, DOCUMENT_KEY_ORDER)
    if isinstance(doc.get("metadata"), dict):
        _reorder(doc["metadata"], METADATA_KEY_ORDER)
    spec = doc.get("spec")
    if doc.get("kind") != "ModelSet" or not isinstance(spec, dict):
        return
    _reorder(spec, SPEC_KEY_ORDER)
    if isinstance(spec.get("defaults"), dict):
        _reorder(spec["defaults"], ENTRY_KEY_ORDER)
    if isinstance(spec.get("models"), list):
        for entry in spec["models"]:
            if isinstance(entry, dict):
                _reorder(entry, ENTRY_KEY_ORDER)


def format_text(text: str, file: Path | str = "<manifest>") -> str:
    """``text`` in canonical form.  Raises ManifestError (``file:line:col``) on invalid YAML."""
    load_documents(text, Path(file))  # the usual checks and error, before ruamel round-trips it
    yaml = _yaml()
    parts: list[str] = []
    for doc in yaml.load_all(text):
        if doc is None:
            continue
        _canonical_document(doc)
        out = io.StringIO()
        yaml.dump(doc, out)
        lines = [line.rstrip() for line in out.getvalue().splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        while lines and not lines[0]:
            lines.pop(0)
        parts.append("\n".join(lines) + "\n")
    return "\n---\n".join(parts)  # each part ends with a newline: one blank line, then ---


@dataclass
class FormatResult:
    """What :func:`format_paths` found: every file read, those whose text changes, and the diffs."""

    files: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)
    diffs: dict[Path, str] = field(default_factory=dict)


def format_paths(paths: Sequence[Path | str], *, write: bool = True) -> FormatResult:
    """Format the manifests under ``paths`` (files, or folders read recursively).  Every file is
    formatted (and checked) before any is written, so an invalid file changes nothing."""
    result = FormatResult(files=_discover(paths))
    new_texts: dict[Path, str] = {}
    for file in result.files:
        old = _read_text(file)
        new = format_text(old, file)
        if new != old:
            result.changed.append(file)
            new_texts[file] = new
            result.diffs[file] = "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True), new.splitlines(keepends=True),
                    fromfile=f"{file} (before)", tofile=f"{file} (formatted)",
                )
            )
    if write:
        for file, new in new_texts.items():
            tmp = file.with_name(f".{file.name}.fmt.tmp")
            tmp.write_text(new, encoding="utf-8")
            shutil.copymode(file, tmp)
            tmp.replace(file)
    return result
