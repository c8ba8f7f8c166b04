"""Model metadata from online repositories (the seed's "This Meta be Good").

Metadata is what describes a model without being needed to run it: author, tags, licence,
trigger words, the repository's file list.  ``type``/``base``/``format`` are *not*
metadata; they live in the config record (:mod:`reconciler.configs`).

This is a data-model module: it imports only pydantic and the standard library, so the
record store (``reconciler.store.metadata``) and the fetchers (``reconciler.sources``)
can both use it without importing each other.

Decisions:

* ``tags`` and ``trained_words`` are sets, as in the seed, but serialise *sorted*, so the
  JSON of one metadata object is the same on every machine (lock files, diffs).
* A :class:`RemoteModelFile` keeps ``path`` as a repo-relative POSIX string: it names a file
  inside a remote listing, never a local one.  The seed types ``files`` as ``List[Path]``, so a
  RemoteModelFile also *behaves* as that path (``os.fspath(f)``, ``str(f)``, ``Path(f)``,
  ``f.name``, ``f.suffix``, ``f.parent``, ``f == Path("unet/x.safetensors")``) while keeping
  its url, size and sha256; a bare path (``Path``/``str``) validates into one without a URL.
  Its JSON is unchanged (the fields only).
* Civitai's ``weight_min``/``weight_max`` (LoRA slider range) are not in the API's structured
  data: they default to the seed's (-1.0, +2.0) and are floats (weights like 0.8 are common).
* Civitai's ``allowCommercialUse`` arrives either as one string (older API) or as a list
  (current API); both become a set of :class:`CommercialUsage`.
* No field holds an access token: download URLs are stored exactly as the API lists them.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import PurePath, PurePosixPath
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_serializer,
    field_validator,
    model_validator,
)


class RemoteModelFile(BaseModel):
    """One file of a remote model: where to fetch it and what it must hash to.

    It is also usable as its repo-relative path (the seed's ``files: List[Path]``):
    ``os.fspath(f)``/``str(f)`` give ``path``; ``name``, ``stem``, ``suffix``, ``parent`` and
    ``parts`` are :class:`~pathlib.PurePosixPath`'s; it equals a ``PurePath`` of the same path.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Download URL (never carries a token)")
    path: str = Field(description="Path relative to the repository (or the file's name on Civitai)")
    size: Optional[int] = Field(default=None, ge=0, description="Size in bytes, when the API lists it")
    sha256: Optional[str] = Field(default=None, description="Lower-case hex SHA256, when the API lists it")
    primary: bool = Field(default=False, description="Civitai: the version's primary file")

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        """A bare path (as the seed's ``List[Path]`` holds) is a file without a download URL."""
        if isinstance(value, PurePath):
            return {"url": "", "path": value.as_posix()}
        if isinstance(value, str):
            return {"url": "", "path": value}
        return value

    @field_validator("path", mode="before")
    @classmethod
    def _posix(cls, value: Any) -> Any:
        return value.as_posix() if isinstance(value, PurePath) else value

    @field_validator("sha256")
    @classmethod
    def _lower(cls, value: Optional[str]) -> Optional[str]:
        return value.lower() if value else None

    # --- the file as a path (the seed's ``files: List[Path]``) -----------------------------

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    @property
    def pure_path(self) -> PurePosixPath:
        """The repo-relative path as a :class:`~pathlib.PurePosixPath`."""
        return PurePosixPath(self.path)

    @property
    def name(self) -> str:
        """The last path segment (``unet/model.safetensors`` -> ``model.safetensors``)."""
        return self.pure_path.name

    @property
    def stem(self) -> str:
        """The last segment without its suffix."""
        return self.pure_path.stem

    @property
    def suffix(self) -> str:
        """The last segment's extension, with its dot (``.safetensors``)."""
        return self.pure_path.suffix

    @property
    def parent(self) -> PurePosixPath:
        """The folder inside the repo (``PurePosixPath('.')`` at the root)."""
        return self.pure_path.parent

    @property
    def parts(self) -> tuple[str, ...]:
        """The path's segments."""
        return self.pure_path.parts

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PurePath):  # compared as the seed's Path
            return self.pure_path == PurePosixPath(other.as_posix())
        return super().__eq__(other)


class ModelMetadataBase(BaseModel):
    """Fields every repository's metadata has.

    ``name`` is the repository's name for the model; the config record's ``name`` is the
    locally customisable one.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Repository's name for the model")
    author: str = Field(default="", description="Model's author")
    tags: set[str] = Field(default_factory=set, description="Model tags")

    @field_serializer("tags")
    def _sorted_tags(self, tags: set[str]) -> list[str]:
        return sorted(tags)


class ModelMetadataWithFiles(ModelMetadataBase):
    """Metadata that lists the model's remote files."""

    files: list[RemoteModelFile] = Field(default_factory=list, description="Files of the model")


class HuggingFaceMetadata(ModelMetadataWithFiles):
    """Metadata of a Hugging Face Hub model repository.

    ``sha`` (the commit the listing was read at) is an addition to the seed's fields: with
    it a listing is reproducible.
    """

    type: Literal["huggingface"] = "huggingface"
    id: str = Field(description="Hugging Face repo_id")
    tag_dict: dict[str, Any] = Field(default_factory=dict, description="Tag/value pairs given besides tags")
    last_modified: Optional[datetime] = Field(default=None, description="Date of the last commit")
    sha: Optional[str] = Field(default=None, description="Commit sha the listing was read at")


class CommercialUsage(str, Enum):
    """Civitai's commercial-use permissions (each value permits what the lower ones do not)."""

    No = "None"
    Image = "Image"
    RentCivit = "RentCivit"
    Rent = "Rent"
    Sell = "Sell"

    def __str__(self) -> str:
        return str(self.value)


class LicenseRestrictions(BaseModel):
    """Civitai's licence switches, under Civitai's own field names."""

    model_config = ConfigDict(extra="forbid")

    AllowNoCredit: bool = Field(default=False, description="Use without crediting the author")
    AllowCommercialUse: set[CommercialUsage] = Field(default_factory=set, description="Commercial uses allowed")
    AllowDerivatives: bool = Field(default=False, description="Merges and derivatives may be shared")
    AllowDifferentLicense: bool = Field(default=False, description="Derivatives may carry other terms")

    @field_validator("AllowCommercialUse", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return set()
        if isinstance(value, str):
            return {value}
        return value

    @field_serializer("AllowCommercialUse")
    def _sorted_uses(self, uses: set[CommercialUsage]) -> list[str]:
        order = list(CommercialUsage)
        return [u.value for u in sorted(uses, key=order.index)]


class CivitaiMetadata(ModelMetadataWithFiles):
    """Metadata of one Civitai model *version* (``id`` is the model, ``version_id`` the version)."""

    type: Literal["civitai"] = "civitai"
    id: int = Field(description="Civitai model id")
    version_id: int = Field(description="Civitai model-version id")
    version_name: str = Field(default="", description="Name of this version")
    model_type: Optional[str] = Field(default=None, description="Civitai's model type (Checkpoint, LORA, ...)")
    created: Optional[datetime] = None
    updated: Optional[datetime] = None
    published: Optional[datetime] = None
    description: Optional[str] = Field(default=None, description="Model description (HTML)")
    version_description: Optional[str] = Field(default=None, description="Version description (HTML)")
    nsfw: bool = False
    restrictions: LicenseRestrictions = Field(default_factory=LicenseRestrictions)
    trained_words: set[str] = Field(default_factory=set, description="Trigger words")
    download_url: str = Field(description="Download URL of the primary file (without a token)")
    base_model_trained_on: str = Field(default="", description="Civitai's base model name, e.g. 'SD 1.5'")
    thumbnail_url: Optional[str] = None
    weight_min: float = Field(default=-1.0, description="LoRA sliders: the minimum suggested weight")
    weight_max: float = Field(default=2.0, description="LoRA sliders: the maximum suggested weight")

    @field_serializer("trained_words")
    def _sorted_words(self, words: set[str]) -> list[str]:
        return sorted(words)

    # --- the seed's licence conveniences -------------------------------------------------

    @property
    def credit_required(self) -> bool:
        """True when using the model requires crediting its author."""
        return not self.restrictions.AllowNoCredit

    @property
    def allow_commercial_use(self) -> bool:
        """True when any commercial use (images, renting, selling) is allowed."""
        return bool(self.restrictions.AllowCommercialUse - {CommercialUsage.No})

    @property
    def commercial_uses(self) -> set[CommercialUsage]:
        """The commercial uses allowed, one by one."""
        return set(self.restrictions.AllowCommercialUse) - {CommercialUsage.No}

    @property
    def allow_derivatives(self) -> bool:
        """True when merges and other derivatives may be shared."""
        return self.restrictions.AllowDerivatives

    @property
    def allow_different_license(self) -> bool:
        """True when derivatives may be shared under different terms (the seed's spelling)."""
        return self.restrictions.AllowDifferentLicense

    @property
    def allow_different_licence(self) -> bool:
        """Alias of :attr:`allow_different_license`."""
        return self.allow_different_license

    @property
    def license(self) -> str:
        """The restrictions as one string, for filters like ``'allowCommercialUse=Sell' in m.license``."""
        r = self.restrictions
        uses = ",".join(u.value for u in sorted(r.AllowCommercialUse, key=list(CommercialUsage).index))
        return (f"allowCommercialUse={uses or 'None'}&allowDerivatives={r.AllowDerivatives}"
                f"&allowDifferentLicense={r.AllowDifferentLicense}&allowNoCredit={r.AllowNoCredit}")

    @property
    def primary_file(self) -> Optional[RemoteModelFile]:
        """The version's primary file (the first file when none is marked)."""
        for f in self.files:
            if f.primary:
                return f
        return self.files[0] if self.files else None


AnyModelRepoMetadata = Annotated[Union[HuggingFaceMetadata, CivitaiMetadata], Field(discriminator="type")]
"""Metadata of any supported repository; a dict with ``type`` validates to the right class."""

AnyModelRepoMetadataValidator: TypeAdapter[AnyModelRepoMetadata] = TypeAdapter(AnyModelRepoMetadata)
"""Validates a dict or a JSON string into :data:`AnyModelRepoMetadata`."""

__all__ = [
    "AnyModelRepoMetadata",
    "AnyModelRepoMetadataValidator",
    "CivitaiMetadata",
    "CommercialUsage",
    "HuggingFaceMetadata",
    "LicenseRestrictions",
    "ModelMetadataBase",
    "ModelMetadataWithFiles",
    "RemoteModelFile",
]
