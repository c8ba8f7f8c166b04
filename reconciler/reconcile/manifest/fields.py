"""What an entry and ``spec.defaults`` share: the entry fields, and the ``config:`` overrides."""

from __future__ import annotations

import re
from typing import Any, Optional

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, field_validator

from reconciler.configs import CONFIG_CLASSES
from reconciler.reconcile.manifest.yamlnodes import quoted_short
from reconciler.sources.base import validate_repo_path
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType

_SHA256 = re.compile(r"[0-9a-f]{64}")

# Fields of a record that the manifest sets through its own keys, or that the reconciler owns.
_NOT_OVERRIDABLE = frozenset(
    {
        "key",
        "name",
        "type",
        "format",
        "base",
        "path",
        "hash",
        "description",
        "source",
        "tags",
        "last_modified",
        "source_api_response",
        "managed_by",
        "manifest_digest",
        "inplace",
        "source_fingerprint",
        "source_revision",
        "warm_state",  # the warm-up's record of its last run
        "warmed_at",
        "warm_load_time_s",
        "warm_hash",
        "warm_error",
    }
)


def _config_override_fields() -> dict[str, Any]:
    """Every other field of any config class, optional, first declaration wins."""
    fields: dict[str, Any] = {}
    for cls in CONFIG_CLASSES.values():
        for name, info in cls.model_fields.items():
            if name in _NOT_OVERRIDABLE or name in fields:
                continue
            fields[name] = (Optional[info.annotation], Field(default=None, description=info.description))
    return dict(sorted(fields.items()))


ConfigOverrides: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "ConfigOverrides",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Config fields to set on the record instead of what the prober finds "
    "(made from the config classes of reconciler.configs, so it follows them).",
    **_config_override_fields(),
)
"""The manifest's ``config:`` mapping: any config field not set through an entry key."""


def _overrides_dict(config: BaseModel) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude_unset=True)


def _check_str(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty")
    return value


class _EntryFields(BaseModel):
    """The fields an entry and ``spec.defaults`` share."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=False)

    revision: Optional[str] = Field(
        default=None,
        description="Branch, tag or commit of a Hugging Face source; the lock file pins the commit",
    )
    variant: Optional[ModelRepoVariant] = Field(
        default=None, description="Repository variant of a Hugging Face source (default: fp16)"
    )
    subfolder: Optional[str] = Field(
        default=None,
        description="Folder of a Hugging Face repo to take, or a file when it ends in a weights extension",
    )
    sha256: Optional[str] = Field(
        default=None,
        description="Expected sha256 of the file (64 hex); verified",
        json_schema_extra={"pattern": "^(sha256:)?[0-9a-fA-F]{64}$"},
    )
    inplace: bool = Field(
        default=False, description="Register a local source where it lies instead of copying it"
    )
    warm: bool = Field(
        default=False, description="Load the model after install; a failed load fails the apply"
    )
    description: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    type: Optional[ModelType] = Field(
        default=None, validation_alias=AliasChoices("type", "model_type"), description="Overrides the prober"
    )
    base: Optional[BaseModelType] = Field(
        default=None, validation_alias=AliasChoices("base", "base_model"), description="Overrides the prober"
    )
    format: Optional[ModelFormat] = Field(
        default=None,
        validation_alias=AliasChoices("format", "model_format"),
        description="Overrides the prober",
    )
    config: ConfigOverrides = Field(  # type: ignore[valid-type]
        default_factory=ConfigOverrides, description="Any other config field to set instead of the prober's"
    )

    @field_validator("revision")
    @classmethod
    def _check_revision(cls, value: Optional[str]) -> Optional[str]:
        value = _check_str(value, "revision")
        if value is not None and (any(c.isspace() for c in value) or ":" in value):
            raise ValueError(f"invalid revision {quoted_short(value)}")
        return value

    @field_validator("subfolder")
    @classmethod
    def _check_subfolder(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else validate_repo_path(value, "subfolder")

    @field_validator("sha256")
    @classmethod
    def _check_sha256(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        digest = value.strip().lower().removeprefix("sha256:")
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"sha256 must be 64 hexadecimal characters, got {quoted_short(value)}")
        return digest

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for tag in value:
            tag = tag.strip()
            if not tag:
                raise ValueError("tags may not be empty")
            if tag not in out:
                out.append(tag)
        return out

    @field_validator("description")
    @classmethod
    def _check_description(cls, value: Optional[str]) -> Optional[str]:
        return value.strip() if value is not None else None

    def config_overrides(self) -> dict[str, Any]:
        """The ``config:`` fields that were given, JSON-ready (enums as their values)."""
        return _overrides_dict(self.config)


class EntryDefaults(_EntryFields):
    """``spec.defaults``: any entry field but ``name`` and ``source``, merged into every entry."""
