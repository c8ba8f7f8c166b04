"""The lock file: every remote source resolved to a revision and exact files.

``reconciler lock`` writes it; plan/apply follow it, so two machines applying the same
lock download the same bytes (sha256-checked), and a plan with a lock needs no network.
It is YAML in a stable order (models by name, files by path) so that it diffs well, and it
holds no URL (rebuilt from the endpoint in use) and no token.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import LockFileError
from reconciler.settings import AppSettings
from reconciler.sources.base import ModelSource
from reconciler.sources.resolve import file_url
from reconciler.sources.resolved import RemoteFile, ResolvedSource, check_remote_path

LOCK_VERSION = 1
HEADER = (
    "# reconciler.lock: written by `reconciler lock`; commit it beside the manifests.\n"
    "# Every remote model's resolved revision and files (path, size, sha256). Do not edit.\n"
)


class LockedFile(BaseModel):
    """One file of a locked model."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path inside the source (repo-relative for Hugging Face)")
    dest: str = Field(description="Path inside the installed model ('' pieces joined by /)")
    size: Optional[int] = None
    sha256: Optional[str] = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class LockedModel(BaseModel):
    """One model's resolution."""

    model_config = ConfigDict(extra="forbid")

    set: str
    source: str = Field(description="Canonical source string")
    source_digest: str = Field(description="Digest of the manifest entry's byte-deciding fields")
    revision: Optional[str] = Field(default=None, description="HF commit sha, Civitai version id, or URL ETag")
    single_file: bool
    name_hint: str
    notes: list[str] = Field(default_factory=list, description="What the resolver noted (e.g. a variant fallback)")
    files: list[LockedFile]

    def to_resolved(self, source: ModelSource, settings: AppSettings) -> ResolvedSource:
        """The ResolvedSource this entry pins, with download URLs for the endpoints in use."""
        return ResolvedSource(
            source=source,
            revision=self.revision,
            files=[RemoteFile(path=f.path, dest=f.dest, url=file_url(source, settings, f.path, self.revision),
                              size=f.size, sha256=f.sha256) for f in self.files],
            single_file=self.single_file,
            name_hint=self.name_hint,
            notes=[*self.notes, f"locked at {self.revision}" if self.revision else "locked"],
        )

    @classmethod
    def from_resolved(cls, set_name: str, source_digest: str, resolved: ResolvedSource) -> LockedModel:
        return cls(
            set=set_name,
            source=str(resolved.source),
            source_digest=source_digest,
            revision=resolved.revision,
            single_file=resolved.single_file,
            name_hint=resolved.name_hint,
            notes=[n for n in resolved.notes if not n.startswith("locked")],
            files=sorted((LockedFile(path=f.path, dest=f.dest, size=f.size, sha256=f.sha256) for f in resolved.files),
                         key=lambda f: f.path),
        )


class LockFile(BaseModel):
    """The whole lock file."""

    model_config = ConfigDict(extra="forbid")

    lockVersion: Literal[1] = LOCK_VERSION
    models: dict[str, LockedModel] = Field(default_factory=dict)

    def sorted(self) -> LockFile:
        return LockFile(models={name: self.models[name] for name in sorted(self.models)})


def read_lock(path: Path) -> Optional[LockFile]:
    """The lock file at ``path``, or None when there is none; LockFileError when damaged."""
    if not path.exists():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise LockFileError(f"{path}: cannot read the lock file: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise LockFileError(f"{where}: malformed lock file: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return LockFile()
    try:
        lock = LockFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LockFileError(f"{path}: invalid lock file at {where}: {first['msg']}") from exc
    for name, model in lock.models.items():
        for f in model.files:
            check_remote_path(f.path, f"{path}: model '{name}'")
            if f.dest:
                check_remote_path(f.dest, f"{path}: model '{name}'")
    return lock


def write_lock(path: Path, lock: LockFile) -> None:
    """Write ``lock`` atomically (temp file + rename), in a stable order."""
    import yaml

    doc = lock.sorted().model_dump(mode="json", exclude_none=False)
    text = HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lock_json_schema() -> dict:
    """JSON Schema of the lock file (for `reconciler schema`)."""
    return LockFile.model_json_schema()
