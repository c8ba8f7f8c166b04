"""Model source types: where a model's bytes come from.

Each source is a frozen pydantic model whose ``str()`` is its *canonical* source string:
:func:`reconciler.sources.parse.parse_source` turns that string back into an equal source
(access tokens and ``LocalModelSource.inplace`` aside: neither is part of a source string).

Canonical forms::

    /abs/path/to/model.safetensors              LocalModelSource (absolute, normalised)
    https://example.com/x.safetensors           URLModelSource (verbatim; secrets in it shown as ***)
    hf://owner/name[@revision][:variant[:subfolder]]
    hf://owner/name[@revision][:variant]::path/file.safetensors
    civitai:62833                               CivitaiModelSource (one model version)
    civitai:model/58390                         CivitaiModelSource (a model's newest version)

Access tokens are ``repr=False`` and ``exclude=True``: they never show in ``str()``,
``repr()``, ``model_dump()`` or ``model_dump_json()``.  A URL that carries a secret of its
own (``?token=``, a presigned signature) is shown redacted by ``str()``, so such a source
does not round-trip through its string: only the manifest holds the real URL.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath, PurePosixPath
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reconciler.netnames import shown_url
from reconciler.taxonomy import ModelRepoVariant

#: File extensions of model weights.  In a Hugging Face source's third segment (or the
#: manifest's ``subfolder`` key), a last path segment ending in one of these names a
#: single *file*; anything else names a *subfolder*.
WEIGHTS_EXTENSIONS: tuple[str, ...] = (
    ".safetensors",
    ".ckpt",
    ".bin",
    ".pt",
    ".pth",
    ".onnx",
    ".gguf",
)

# One segment of a Hugging Face repo id (huggingface_hub's validate_repo_id, ASCII only):
# letters, digits, '_', '-', '.'; starts and ends with a letter, digit or '_'; no '--' or '..'.
_HF_SEGMENT = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
# A git revision as huggingface_hub accepts it: a branch, tag, commit or refs/pr/N.
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


def is_weights_file(path: str) -> bool:
    """True when ``path``'s last segment ends in a model-weights extension."""
    return path.lower().endswith(WEIGHTS_EXTENSIONS)


def validate_repo_id(repo_id: str) -> str:
    """Check a Hugging Face repo id (``owner/name`` or a legacy single ``name``).

    Raises ValueError with a message naming what is wrong.
    """
    parts = repo_id.split("/")
    if len(parts) > 2:
        raise ValueError(f"repo id {repo_id!r} must be 'owner/name'")
    for part in parts:
        if not _HF_SEGMENT.fullmatch(part) or "--" in part or ".." in part:
            raise ValueError(
                f"invalid Hugging Face repo id {repo_id!r}: each part may hold only letters, digits, "
                "'_', '-' and '.', must start and end with a letter or digit, at most 96 characters, "
                "and no '--' or '..'"
            )
    return repo_id


def validate_repo_path(path: str, what: str) -> str:
    """Normalise a path inside a repo (no leading/trailing '/'); refuse '..', '.' and empty parts."""
    stripped = path.strip("/")
    if not stripped:
        raise ValueError(f"{what} is empty")
    if "\\" in stripped or ":" in stripped:
        raise ValueError(f"{what} {path!r} may not contain '\\' or ':'")
    parts = stripped.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} {path!r} must be a plain relative path (no '.', '..' or '//')")
    if any(p != p.strip() or not p.isprintable() for p in parts):
        raise ValueError(f"{what} {path!r} has surrounding whitespace or control characters")
    return str(PurePosixPath(*parts))


class _SourceBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalModelSource(_SourceBase):
    """A file or folder on this machine.

    ``inplace`` means register it where it lies instead of copying it; it is a manifest
    flag, not part of the source string.
    """

    type: Literal["local"] = "local"
    path: Path
    inplace: bool = False

    def __str__(self) -> str:
        return str(self.path)


class URLModelSource(_SourceBase):
    """A single file at an http(s) URL."""

    type: Literal["url"] = "url"
    url: str
    access_token: Optional[str] = Field(default=None, repr=False, exclude=True)

    @field_validator("url", mode="before")
    @classmethod
    def _url_text(cls, value: object) -> object:
        """A pydantic ``AnyHttpUrl`` (the seed's type for a URL) is taken as its string."""
        from pydantic.networks import AnyUrl

        return str(value) if isinstance(value, AnyUrl) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        match = re.match(r"(?i)(https?)://([^/?#\s]+)", value)
        if not match or any(c.isspace() for c in value):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    def __str__(self) -> str:
        """The URL, with any secret in it (user:password, a token or signature in the query)
        replaced by ``***``: what records, the lock, plans and messages show.  The bytes
        are fetched from :attr:`url` as written."""
        return shown_url(self.url)


class HFModelSource(_SourceBase):
    """A Hugging Face Hub repository, or part of one.

    ``subfolder`` narrows to one folder of the repo (``owner/name:fp16:vae``); ``file``
    takes exactly one file (``owner/name::path/model.safetensors``).  In a source string
    the third segment is a *file* when its last segment ends in one of
    :data:`WEIGHTS_EXTENSIONS`, otherwise a *subfolder*; the two are exclusive.
    ``revision`` (branch, tag or commit) is written ``owner/name@revision`` in the string.
    """

    type: Literal["hf"] = "hf"
    repo_id: str
    variant: Optional[ModelRepoVariant] = None
    subfolder: Optional[str] = None
    file: Optional[str] = None
    revision: Optional[str] = None
    access_token: Optional[str] = Field(default=None, repr=False, exclude=True)

    @field_validator("repo_id")
    @classmethod
    def _check_repo_id(cls, value: str) -> str:
        return validate_repo_id(value)

    @model_validator(mode="before")
    @classmethod
    def _subfolder_naming_a_file(cls, data: Any) -> Any:
        """The seed's ``subfolder`` is a ``Path`` and may name one file of the repo
        (``subfolder='OrangeMix/OrangeMix1.ckpt'``): such a subfolder is taken as ``file``."""
        if not isinstance(data, dict) or data.get("subfolder") is None:
            return data
        data = dict(data)
        subfolder = data["subfolder"]
        if isinstance(subfolder, PurePath):
            subfolder = subfolder.as_posix()
        data["subfolder"] = subfolder
        if isinstance(subfolder, str) and is_weights_file(subfolder) and data.get("file") is None:
            data["file"] = data.pop("subfolder")
        return data

    @field_validator("subfolder")
    @classmethod
    def _check_subfolder(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else validate_repo_path(value, "subfolder")

    @field_validator("file")
    @classmethod
    def _check_file(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else validate_repo_path(value, "file")

    @field_validator("revision")
    @classmethod
    def _check_revision(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not _REVISION.fullmatch(value) or ".." in value or value.endswith("/")):
            raise ValueError(f"invalid revision {value!r}")
        return value

    @model_validator(mode="after")
    def _file_or_subfolder(self) -> HFModelSource:
        if self.file is not None and self.subfolder is not None:
            raise ValueError("a Hugging Face source takes a subfolder or a file, not both")
        return self

    def __str__(self) -> str:
        text = f"hf://{self.repo_id}"
        if self.revision:
            text += f"@{self.revision}"
        path = self.file or self.subfolder
        if self.variant is not None or path:
            text += f":{self.variant.value if self.variant is not None else ''}"
        if path:
            text += f":{path}"
        return text


class CivitaiModelSource(_SourceBase):
    """One model version on Civitai (the version's primary file is installed).

    Exactly one of ``version_id`` (``civitai:62833``) and ``model_id`` (``civitai:model/58390``,
    from a pasted model-page URL without ``?modelVersionId=``) is given; a model id resolves
    to the model's newest version, which the lock file then pins.
    """

    type: Literal["civitai"] = "civitai"
    version_id: Optional[int] = Field(default=None, gt=0)
    model_id: Optional[int] = Field(default=None, gt=0)
    access_token: Optional[str] = Field(default=None, repr=False, exclude=True)

    @model_validator(mode="after")
    def _version_or_model(self) -> CivitaiModelSource:
        if (self.version_id is None) == (self.model_id is None):
            raise ValueError("a Civitai source takes a version_id or a model_id (exactly one)")
        return self

    def __str__(self) -> str:
        if self.version_id is None:
            return f"civitai:model/{self.model_id}"
        return f"civitai:{self.version_id}"


ModelSource = Annotated[
    Union[LocalModelSource, URLModelSource, HFModelSource, CivitaiModelSource],
    Field(discriminator="type"),
]
"""Any model source; a dict with ``type`` validates to the right class."""

__all__ = [
    "WEIGHTS_EXTENSIONS",
    "CivitaiModelSource",
    "HFModelSource",
    "LocalModelSource",
    "ModelSource",
    "URLModelSource",
    "is_weights_file",
    "validate_repo_id",
    "validate_repo_path",
]
