"""``reconciler import``: write a manifest that declares the models already on disk or in the store.

A team with an existing models folder adopts it in one step: ``import`` writes the manifest,
the following ``plan`` shows only ``adopt`` (and ``noop`` for what the set already manages),
and ``apply`` turns the files into managed records without copying a byte.

What is declared
----------------
* store records that no set manages (registered by hand, by ``scan_directory`` or by
  ``sync_to_config``), and records of the set being written (``--set``) that its manifest
  does not declare yet (otherwise the next plan would prune them);
* models found under DIR (default: the models dir) with the same walk as
  :func:`reconciler.install.scan.find_models` (a folder model counts once, hidden and
  state folders are skipped), probed; files that are not models are reported, not declared.

Models already declared by a manifest that was read (the ``--out`` file and the default
manifest folders), and paths a record of another set owns, are left out.

How each entry is written, and why
----------------------------------
The planner installs a local source by copying it to ``<models_dir>/<base>/<type>/<name><suffix>``
and adopts (no copy) when the files are already exactly there; an ``inplace`` entry is
registered where it lies.  So:

* a model lying exactly at its install destination (for the entry's name, type and base) is
  declared as a plain local source: the plan adopts it, and it stays an ordinary installed
  model;
* any other model (elsewhere in the models dir, outside it, or a record registered in place)
  is declared ``inplace: true``, so the plan adopts it where it is instead of copying it;
* a record of the set keeps its own source, name and ``inplace`` (the plan says ``noop``).

Sources inside the models dir or the manifest's folder are written relative to the
manifest's folder (``../models/sd-1/lora/x.safetensors``), so the manifest survives a move of
the checkout; others are absolute.  ``type`` and ``base`` are always written (what the
prober or the record decided), ``description`` and ``tags`` when the record has them.  Names
come from the record or the file/folder name, made unique against every name read
(``name-2``, ``name-3``, ...); a model at its install destination gets first pick, since
renaming it would move its destination.

An existing ``--out`` file is edited with ruamel.yaml's round-trip mode: its comments, key
order and quoting are kept and only the new entries are appended (to the set's document, or
in a new document when the file has no such set).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import ValidationError

from reconciler.configs import ModelConfigBase
from reconciler.errors import (
    InvalidModelConfigException,
    InvalidModelError,
    ManifestError,
    OptionalDependencyError,
    SourceNotFoundError,
    UnsafePathError,
)
from reconciler.install.paths import install_destination, is_reserved_name, resolve_model_path
from reconciler.install.scan import find_models
from reconciler.install.service import ModelInstallService
from reconciler.reconcile.manifest import API_VERSION, KIND, ModelSetMetadata, load_manifests
from reconciler.sources import LocalModelSource, parse_source

__all__ = ["DEFAULT_SET", "ImportResult", "ImportedModel", "import_manifest"]

DEFAULT_SET = "imported"
_MAX_NAME = 200
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]+")
_PROBE_ERRORS = (InvalidModelError, InvalidModelConfigException, OptionalDependencyError, SourceNotFoundError)


@dataclass
class ImportedModel:
    """One model the import declares."""

    name: str
    source: str  # as written in the manifest
    inplace: bool
    type: str
    base: str
    description: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    key: Optional[str] = None  # the record it comes from, if any
    path: Optional[Path] = None  # where its files are


@dataclass
class ImportResult:
    """What :func:`import_manifest` produced."""

    text: str
    """The manifest's YAML: the whole file when ``out`` was given, else the new document."""
    set_name: str
    added: list[ImportedModel] = field(default_factory=list)
    already_declared: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    out: Optional[Path] = None
    written: bool = False


@dataclass
class _Candidate:
    path: Path  # absolute, not symlink-resolved
    name: str
    type: str
    base: str
    record: Optional[ModelConfigBase] = None
    source: Optional[str] = None  # a set record's own source (absolute when local)
    inplace: Optional[bool] = None  # decided by the record, else by the destination
    canonical: bool = False


def _abs(path: Path | str) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _value(v: Any) -> str:
    return str(v.value if hasattr(v, "value") else v)


def _fit(name: str, limit: int) -> str:
    """``name`` cut to at most ``limit`` bytes of UTF-8, on a character boundary."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _clean_name(name: str) -> str:
    """A model name the manifest accepts (no separators or control characters, <= 200 bytes)."""
    name = _UNSAFE_NAME_CHARS.sub("-", name).strip()
    name = _fit(name, _MAX_NAME).strip()
    if is_reserved_name(name):  # a Windows device name (con, nul.v2): the manifest refuses it
        name = _fit(f"model-{name}", _MAX_NAME).strip()
    return name if name and name not in (".", "..") else "model"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = _fit(name, _MAX_NAME - len(suffix)) + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _check_set_name(set_name: str) -> None:
    try:
        ModelSetMetadata(name=set_name)
    except ValidationError as exc:
        message = exc.errors()[0].get("msg", "invalid set name").removeprefix("Value error, ")
        raise ManifestError(f"--set: {message}") from None


def _source_text(path: Path, models_dir: Path, manifest_dir: Path) -> str:
    """Relative to the manifest's folder when inside the models dir or that folder, else absolute."""
    if _inside(path, models_dir) or _inside(path, manifest_dir):
        rel = os.path.relpath(path, manifest_dir)
        return rel if rel.startswith("..") else "./" + Path(rel).as_posix()
    return str(path)


@dataclass
class _Declared:
    names: set[str] = field(default_factory=set)
    set_names: set[str] = field(default_factory=set)  # model names of the set being written
    paths: set[str] = field(default_factory=set)  # real paths of local sources
    set_files: dict[str, Path] = field(default_factory=dict)  # set name -> file declaring it


def _read_declared(paths: Sequence[Path], set_name: str) -> _Declared:
    declared = _Declared()
    if not paths:
        return declared
    manifest = load_manifests(list(paths))
    for model_set in manifest.sets:
        if model_set.origin is not None:
            declared.set_files.setdefault(model_set.name, model_set.origin.file)
        for entry in model_set.spec.models:
            declared.names.add(entry.name)
            if model_set.name == set_name:
                declared.set_names.add(entry.name)
            source = entry.model_source
            if isinstance(source, LocalModelSource):
                declared.paths.add(os.path.realpath(source.path))
    return declared


def _record_candidates(
    installer: ModelInstallService, set_name: str, declared: _Declared, result: ImportResult
) -> tuple[list[_Candidate], set[str]]:
    """Candidates from the store, and the real paths of every record (to leave out of the walk)."""
    models_dir = installer.models_dir
    owned: set[str] = set()
    candidates: list[_Candidate] = []
    for rec in sorted(installer.record_store.all_models(), key=lambda r: (r.path, r.key)):
        path = _abs(resolve_model_path(models_dir, rec))
        owned.add(os.path.realpath(path))
        if rec.managed_by not in (None, set_name):
            continue
        if rec.managed_by == set_name and rec.name in declared.set_names:
            result.already_declared += 1
            continue
        if rec.managed_by is None and os.path.realpath(path) in declared.paths:
            result.already_declared += 1
            continue
        if not path.exists():
            result.skipped.append((path, f"record '{rec.name}' ({rec.key}): its files are missing"))
            continue
        cand = _Candidate(path=path, name=rec.name, type=_value(rec.type), base=_value(rec.base), record=rec)
        if rec.managed_by == set_name:
            src = parse_source(rec.source) if rec.source else None
            if isinstance(src, LocalModelSource):
                if not src.path.exists():
                    result.skipped.append((path, f"record '{rec.name}' of set '{set_name}': its source "
                                                 f"{src.path} no longer exists; declare it by hand"))
                    continue
                cand.source = str(_abs(src.path))
            else:
                cand.source = rec.source
            cand.inplace = rec.inplace
        elif rec.inplace:
            cand.inplace = True
        candidates.append(cand)
    return candidates, owned


def _disk_candidates(
    installer: ModelInstallService, directory: Path, exclude: set[str], declared: _Declared, result: ImportResult
) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    for found in find_models(directory, exclude=exclude):
        path = _abs(found)
        if os.path.realpath(path) in declared.paths:
            result.already_declared += 1
            continue
        try:
            data, _notes = installer.probe(path)
        except _PROBE_ERRORS as exc:
            result.skipped.append((path, str(exc).removeprefix(f"{found}: ").removeprefix(f"{path}: ")))
            continue
        candidates.append(_Candidate(path=path, name=str(data["name"]), type=_value(data["type"]),
                                     base=_value(data["base"])))
    return candidates


def _destination(models_dir: Path, cand: _Candidate, name: str) -> Optional[Path]:
    try:
        return _abs(install_destination(models_dir, cand.base, cand.type, name, cand.path))
    except UnsafePathError:  # a name no folder can have: the model is not at its destination
        return None


def _assign(installer: ModelInstallService, candidates: list[_Candidate], manifest_dir: Path,
            declared: _Declared, result: ImportResult) -> list[ImportedModel]:
    """Names (unique), inplace and source text of every candidate."""
    models_dir = _abs(installer.models_dir)
    for cand in candidates:
        cand.name = _clean_name(cand.name)
        dest = _destination(models_dir, cand, cand.name)
        cand.canonical = dest is not None and dest == cand.path

    def priority(cand: _Candidate) -> tuple[int, str]:
        if cand.source is not None:  # a record of the set: its name is its identity
            return (0, str(cand.path))
        return (1 if cand.canonical and not cand.inplace else 2, str(cand.path))

    taken = set(declared.names)
    models: list[ImportedModel] = []
    for cand in sorted(candidates, key=priority):
        name = _unique(cand.name, taken)
        rec = cand.record
        taken.add(name)
        if cand.source is not None:
            source_path = Path(cand.source)
            source = (_source_text(source_path, models_dir, manifest_dir) if source_path.is_absolute()
                      else cand.source)
            inplace = bool(cand.inplace)
        else:
            at_destination = name == cand.name and cand.canonical
            inplace = bool(cand.inplace) or not at_destination
            source = _source_text(cand.path, models_dir, manifest_dir)
        models.append(ImportedModel(
            name=name, source=source, inplace=inplace, type=cand.type, base=cand.base,
            description=rec.description if rec is not None else None,
            tags=list(rec.tags or []) if rec is not None else [],
            key=rec.key if rec is not None else None, path=cand.path,
        ))
    models.sort(key=lambda m: (str(m.path), m.name))
    return models


# --- YAML ---------------------------------------------------------------------------------------


def _yaml(text: str = "") -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _detect_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


_SEQ_ITEM = re.compile(r"^( *)-( +)\S")
_KEY_LINE = re.compile(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$")


def _detect_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indents as the file writes them; (2, 4, 2) by default."""
    mapping, sequence, offset = 2, 4, 2
    lines = text.splitlines()
    found_map = found_seq = False
    for prev, line in zip(lines, lines[1:], strict=False):
        key = _KEY_LINE.match(prev)
        if key is None:
            continue
        outer = len(key.group(1))
        item = _SEQ_ITEM.match(line)
        if item is not None and not found_seq:
            offset = max(0, len(item.group(1)) - outer)
            sequence = offset + 1 + len(item.group(2))
            found_seq = True
        elif item is None and not found_map:
            inner = len(line) - len(line.lstrip(" "))
            if inner > outer and line.strip() and not line.lstrip().startswith("#"):
                mapping = inner - outer
                found_map = True
        if found_map and found_seq:
            break
    return mapping, sequence, offset


def _entry_map(model: ImportedModel) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    entry = CommentedMap()
    entry["name"] = model.name
    entry["source"] = model.source
    if model.inplace:
        entry["inplace"] = True
    entry["type"] = model.type
    entry["base"] = model.base
    if model.description:
        entry["description"] = model.description
    if model.tags:
        tags = CommentedSeq(model.tags)
        tags.fa.set_flow_style()
        entry["tags"] = tags
    return entry


def _new_document(set_name: str, models: Iterable[ImportedModel], comment: str) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    doc = CommentedMap()
    doc["apiVersion"] = API_VERSION
    doc["kind"] = KIND
    doc["metadata"] = CommentedMap(name=set_name)
    doc["spec"] = CommentedMap(models=CommentedSeq(_entry_map(m) for m in models))
    doc.yaml_set_start_comment(comment)
    return doc


def _dump(yaml: Any, docs: list[Any]) -> str:
    stream = io.StringIO()
    if len(docs) == 1:
        yaml.dump(docs[0], stream)
    else:
        yaml.dump_all(docs, stream)
    return stream.getvalue()


def _merge_into(text: str, set_name: str, models: list[ImportedModel], comment: str) -> str:
    """``text`` (an existing manifest) with ``models`` appended to set ``set_name``'s list.

    The new entries are spliced into the text, so every existing byte (comments, quoting,
    indentation, blank lines) stays as it was: they go after the last line of the list's
    last entry, before any comment lines that follow it (a trailing comment stays last).
    A file without that set gets a new document at its end.  Only an unusual layout (no
    ``spec.models`` key, a non-empty flow list) is rewritten through ruamel.yaml instead.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml = _yaml(text)
    docs = list(yaml.load_all(text))
    target = None
    for doc in docs:
        if isinstance(doc, CommentedMap) and doc.get("kind") == KIND:
            metadata = doc.get("metadata")
            if isinstance(metadata, dict) and metadata.get("name") == set_name:
                target = doc
                break
    if target is None:
        new_doc = _dump(_yaml(text), [_new_document(set_name, models, comment)])
        if not text.strip():
            return new_doc
        return text + ("" if text.endswith("\n") else "\n") + "---\n" + new_doc
    spliced = _splice(text, target, models)
    if spliced is not None:
        return spliced
    spec = target.get("spec")
    if not isinstance(spec, CommentedMap):
        spec = CommentedMap()
        target["spec"] = spec
    current = spec.get("models")
    if not isinstance(current, CommentedSeq) or (not current and current.fa.flow_style()):
        current = CommentedSeq()
        spec["models"] = current
    for model in models:
        current.append(_entry_map(model))
    return _dump(yaml, [d for d in docs if d is not None])


_DOC_MARKER = re.compile(r"^(---|\.\.\.)(\s|$)")
_EMPTY_FLOW = re.compile(r"^(\s*models\s*:)\s*\[\s*\](.*)$")


def _next_key_line(mapping: Any, key: str) -> Optional[int]:
    keys = list(mapping)
    i = keys.index(key)
    return mapping.lc.key(keys[i + 1])[0] if i + 1 < len(keys) else None


def _splice(text: str, doc: Any, models: list[ImportedModel]) -> Optional[str]:
    """Insert the entries' text into ``text`` after ``doc``'s ``spec.models`` list, or None
    when the layout is not one this handles."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    spec = doc.get("spec")
    if not isinstance(spec, CommentedMap) or "models" not in spec:
        return None
    current = spec["models"]
    lines = text.splitlines(keepends=True)
    key_line, key_col = spec.lc.key("models")
    if isinstance(current, CommentedSeq) and current:
        if current.fa.flow_style():
            return None
        item_line, item_col = current.lc.item(0)
        dash_col = lines[item_line].rfind("-", 0, item_col)
        if dash_col < 0:
            return None
        content_col = item_col
    elif current is None or isinstance(current, CommentedSeq):
        if current is not None:  # `models: []`: drop the brackets, keep any comment after them
            match = _EMPTY_FLOW.match(lines[key_line].rstrip("\r\n"))
            if match is None:
                return None
            ending = lines[key_line][len(lines[key_line].rstrip("\r\n")):] or "\n"
            lines[key_line] = match.group(1) + match.group(2) + ending
        _mapping, sequence, offset = _detect_indent(text)
        dash_col = key_col + offset
        content_col = dash_col + max(2, sequence - offset)
    else:
        return None

    # the first line after the list: the next key of spec or of the document, the next
    # document, or the end of the file
    ends = [len(lines)]
    for mapping, key in ((spec, "models"), (doc, "spec")):
        nxt = _next_key_line(mapping, key)
        if nxt is not None:
            ends.append(nxt)
    ends += [i for i in range(key_line + 1, len(lines)) if _DOC_MARKER.match(lines[i])][:1]
    end = min(ends)
    last = end - 1
    while last > key_line and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
        last -= 1

    from ruamel.yaml import YAML

    dumper = YAML(typ="rt")
    dumper.width = 4096
    mapping, _sequence, _offset = _detect_indent(text)
    dumper.indent(mapping=mapping, sequence=content_col - dash_col, offset=0)
    stream = io.StringIO()
    dumper.dump(CommentedSeq(_entry_map(m) for m in models), stream)
    pad = " " * dash_col
    block = "".join(pad + line if line.strip() else line for line in stream.getvalue().splitlines(keepends=True))
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, block)
    return "".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- entry point ----------------------------------------------------------------------------------


def import_manifest(
    installer: ModelInstallService,
    directory: Optional[Path] = None,
    set_name: str = DEFAULT_SET,
    out: Optional[Path] = None,
    also_read: Sequence[Path] = (),
) -> ImportResult:
    """Declare the models on disk under ``directory`` (default: the models dir) and in the
    store (unmanaged records and those of ``set_name``) in a manifest.

    With ``out``: when the file exists, the new entries are appended to it (comments and
    order kept); otherwise it is created.  Without ``out`` the new document is only
    returned (``result.text``), with paths relative to the working directory.  Manifests in
    ``also_read`` (e.g. the default manifest folder) are read so their models are not
    declared twice and their names are not reused.  Raises ManifestError for a bad set name
    or an unreadable manifest, SourceNotFoundError for a missing ``directory``.
    """
    _check_set_name(set_name)
    models_dir = _abs(installer.models_dir)
    scan_root = _abs(directory) if directory is not None else models_dir
    if directory is not None and not scan_root.exists():
        raise SourceNotFoundError(f"{directory} does not exist")
    out_abs = _abs(out) if out is not None else None
    manifest_dir = out_abs.parent if out_abs is not None else _abs(Path.cwd())

    to_read: list[Path] = []
    seen: set[str] = set()
    for path in ([out_abs] if out_abs is not None and out_abs.exists() else []) + [Path(p) for p in also_read]:
        if path.exists() and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            to_read.append(path)
    declared = _read_declared(to_read, set_name)
    if out_abs is not None and set_name in declared.set_files:
        where = _abs(declared.set_files[set_name])
        if where != out_abs:
            raise ManifestError(f"set '{set_name}' is declared in {where}; write to that file (--out {where}) "
                                "or choose another name with --set", out)

    result = ImportResult(text="", set_name=set_name, out=out)
    candidates, owned = _record_candidates(installer, set_name, declared, result)
    exclude = owned | declared.paths
    if scan_root.exists():
        candidates += _disk_candidates(installer, scan_root, exclude, declared, result)
    result.added = _assign(installer, candidates, manifest_dir, declared, result)

    comment = (f"Written by `reconciler import` ({len(result.added)} models from "
               f"{_source_text(scan_root, models_dir, manifest_dir)} and the record store).\n"
               "Run `reconciler plan` with this file: it should show only adopt and noop.")
    if out_abs is not None and out_abs.exists():
        text = out_abs.read_text(encoding="utf-8")
        if result.added:
            result.text = _merge_into(text, set_name, result.added, comment)
            _write_atomic(out_abs, result.text)
            result.written = True
        else:
            result.text = text
        return result
    result.text = _dump(_yaml(), [_new_document(set_name, result.added, comment)])
    if out_abs is not None:
        out_abs.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out_abs, result.text)
        result.written = True
    return result
