"""The manifest's models: ModelEntry, ModelSet (metadata, spec), Manifest, and where each was declared."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from reconciler.errors import ManifestError
from reconciler.reconcile.manifest.fields import EntryDefaults, _EntryFields
from reconciler.reconcile.manifest.sources import _resolve_source
from reconciler.reconcile.manifest.yamlnodes import clip_message, quoted_short
from reconciler.sources import LocalModelSource, ModelSource

API_VERSION = "reconciler/v1"
KIND = "ModelSet"

DOCUMENT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")
# Windows device names (CON, nul.txt, COM1...): the rule of reconciler.install.paths.is_reserved_name,
# repeated here so that `validate` does not import the installer (a test checks they agree).
_WINDOWS_RESERVED = re.compile(
    r"(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]|CONIN\$|CONOUT\$)", re.IGNORECASE
)
MAX_NAME_LENGTH = 200
"""Longest model name, in UTF-8 bytes (a file name holds 255 bytes, and the suffix goes on it)."""


def _is_reserved_name(name: str) -> bool:
    return _WINDOWS_RESERVED.fullmatch(name.split(".", 1)[0].rstrip(" ")) is not None
_SOURCE_FIELDS = frozenset({"source", "revision", "variant", "subfolder", "inplace"})


@dataclass(frozen=True)
class EntryOrigin:
    """Where an entry was declared: not part of the entry's value, digest or schema."""

    file: Path
    line: int
    column: int
    set_name: str
    manifest_dir: Path
    fields: dict[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)
    """1-based (line, column) of each key's value as written in the entry."""

    def location(self, field_name: str | None = None) -> str:
        """``file:line:col`` of the entry, or of one of its fields' values when written there."""
        line, column = self.fields.get(field_name or "", (self.line, self.column))
        return f"{self.file}:{line}:{column}"

    def error(self, message: str, field_name: str | None = None) -> ManifestError:
        """A ManifestError pointing at the entry (or one of its fields)."""
        line, column = self.fields.get(field_name or "", (self.line, self.column))
        return ManifestError(clip_message(message), self.file, line, column)


@dataclass(frozen=True)
class SetOrigin:
    """Where a ModelSet document was declared."""

    file: Path
    line: int
    column: int

    @property
    def manifest_dir(self) -> Path:
        return self.file.parent


class ModelEntry(_EntryFields):
    """One model a set declares.  After :func:`load_manifests` the defaults are merged in and
    ``revision``/``variant``/``subfolder`` hold the effective values (from the keys, the source
    string, or the defaults); ``source`` stays as written."""

    name: str = Field(
        description="Unique across all sets read; the installed folder's name",
        json_schema_extra={"minLength": 1, "pattern": r"^[^/\\]+$"},
    )
    source: str = Field(
        description="Local path, URL, repo/name[:variant[:subfolder]], hf://..., civitai:<id>",
        json_schema_extra={"minLength": 1},
    )

    _origin: Optional[EntryOrigin] = PrivateAttr(default=None)
    _source: Optional[ModelSource] = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("name is empty")
        if value != value.strip():
            raise ValueError(f"name {quoted_short(value)} has leading or trailing spaces")
        if (
            value in (".", "..")
            or "/" in value
            or "\\" in value
            or not value.isprintable()
            or len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH
        ):
            raise ValueError(
                f"name {quoted_short(value)} must be usable as a folder name (no '/', '\\', control characters; "
                f"not '.' or '..'; at most {MAX_NAME_LENGTH} bytes in UTF-8)"
            )
        if _is_reserved_name(value):
            raise ValueError(
                f"name {quoted_short(value)} is a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9), "
                "which no folder or file can be called"
            )
        return value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("source is empty")
        return value

    def model_copy(self, *, update: Optional[dict[str, Any]] = None, deep: bool = False) -> ModelEntry:
        """A copy (keeping the origin); the parsed source is recomputed when ``update``
        touches a field it depends on."""
        copy = super().model_copy(update=update, deep=deep)
        if update and _SOURCE_FIELDS.intersection(update):
            copy._source = None
        return copy

    @property
    def origin(self) -> Optional[EntryOrigin]:
        """Where the entry was declared (None for an entry made in code)."""
        return self._origin

    @property
    def set_name(self) -> Optional[str]:
        return self._origin.set_name if self._origin else None

    @property
    def model_source(self) -> ModelSource:
        """The source parsed, with the entry's ``variant``/``subfolder``/``revision`` applied
        and relative paths resolved against the manifest's folder (or the working directory
        for an entry made in code).  Raises SourceError when it cannot be resolved."""
        if self._source is None:
            base_dir = self._origin.manifest_dir if self._origin else Path.cwd()
            self._source = _resolve_source(self, None, base_dir, None)[0]
        return self._source

    def _portable_source(self) -> str:
        """Canonical source, with local paths inside the manifest's folder written relative to
        it, so digests do not change when a checkout moves to another directory."""
        src = self.model_source
        if isinstance(src, LocalModelSource) and self._origin is not None:
            try:
                rel = src.path.relative_to(self._origin.manifest_dir.absolute())
            except ValueError:
                return str(src)
            return "./" + rel.as_posix() if rel.parts else "."
        return str(src)

    def _digest_of(self, payload: dict[str, Any]) -> str:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def source_digest(self) -> str:
        """sha256 over only what decides the bytes: canonical source (with revision, variant,
        subfolder or file), sha256 and inplace.  A change here means ``replace``."""
        return self._digest_of(
            {"v": 1, "source": self._portable_source(), "sha256": self.sha256, "inplace": self.inplace}
        )

    def digest(self) -> str:
        """sha256 over a canonical JSON of the whole merged entry (source in canonical form;
        tags sorted; config keys sorted).  Equal for equivalent spellings (``repo:fp16`` vs
        ``repo`` + ``variant: fp16``, key order, quoting, defaults vs per-entry values);
        different when any field that matters changes.  The set name is not included."""
        return self._digest_of(
            {
                "v": 1,
                "name": self.name,
                "source": self._portable_source(),
                "sha256": self.sha256,
                "inplace": self.inplace,
                "warm": self.warm,
                "description": self.description,
                "tags": sorted(self.tags),
                "type": self.type.value if self.type else None,
                "base": self.base.value if self.base else None,
                "format": self.format.value if self.format else None,
                "config": self.config_overrides(),
            }
        )


class ModelSetSpec(BaseModel):
    """``spec`` of a ModelSet."""

    model_config = ConfigDict(extra="forbid")

    prune: bool = Field(default=True, description="Remove models this set installed and no longer declares")
    defaults: EntryDefaults = Field(default_factory=EntryDefaults, description="Merged into every entry")
    models: list[ModelEntry] = Field(default_factory=list)

    @field_validator("models", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class DocumentMetadata(BaseModel):
    """``metadata`` of a manifest document: its name (unique per kind) and free labels."""

    model_config = ConfigDict(extra="forbid")

    #: what the document is called in messages ("set", "view")
    noun: ClassVar[str] = "document"

    name: str = Field(json_schema_extra={"pattern": "^" + DOCUMENT_NAME.pattern + "$"})
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not DOCUMENT_NAME.fullmatch(value):
            raise ValueError(
                f"{cls.noun} name {quoted_short(value)} must be 1-63 lowercase letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
        return value


class ModelSetMetadata(DocumentMetadata):
    """``metadata`` of a ModelSet."""

    noun: ClassVar[str] = "set"

    name: str = Field(
        description="Owner label of the models this set installs; unique across all manifests read",
        json_schema_extra={"pattern": "^" + DOCUMENT_NAME.pattern + "$"},
    )


class ModelSet(BaseModel):
    """One ModelSet document."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["reconciler/v1"]  # noqa: N815 - the manifest's own key
    kind: Literal["ModelSet"]
    metadata: ModelSetMetadata
    spec: ModelSetSpec = Field(default_factory=ModelSetSpec)

    _origin: Optional[SetOrigin] = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def origin(self) -> Optional[SetOrigin]:
        return self._origin


@dataclass
class Manifest:
    """Every ModelSet read, in file order."""

    sets: list[ModelSet] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    views: list[Any] = field(default_factory=list)  # ModelView documents (manifest.views)

    def entries(self) -> list[tuple[ModelSet, ModelEntry]]:
        """(set, entry) for every entry of every set, in declaration order."""
        return [(s, e) for s in self.sets for e in s.spec.models]

    @property
    def set_names(self) -> tuple[str, ...]:
        """Names of the sets read, in order (prune only touches records managed by these)."""
        return tuple(s.name for s in self.sets)

    def by_name(self) -> dict[str, ModelEntry]:
        """Every entry by its (unique) name."""
        return {entry.name: entry for model_set in self.sets for entry in model_set.spec.models}

    def get(self, name: str) -> Optional[ModelEntry]:
        """The entry with that model name, if any (linear; use by_name() in loops)."""
        for _, entry in self.entries():
            if entry.name == name:
                return entry
        return None

    def __len__(self) -> int:
        return sum(len(s.spec.models) for s in self.sets)
