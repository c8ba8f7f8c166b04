"""``kind: ModelView`` documents: where installed models must also appear for an app.

::

    apiVersion: reconciler/v1
    kind: ModelView
    metadata: {name: comfy}
    spec:
      app: comfyui          # comfyui | a1111 | forge | sdnext | hf-cache
      root: /opt/ComfyUI    # relative paths are relative to the manifest's folder
      link: hardlink        # hardlink (default) | symlink | copy | config (ComfyUI only)
      sets: [studio]        # default: every set read
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from reconciler.reconcile.manifest.models import DOCUMENT_NAME, DocumentMetadata
from reconciler.views.apps import App, LinkMode

VIEW_KIND = "ModelView"


class ModelViewMetadata(DocumentMetadata):
    """``metadata`` of a ModelView."""

    noun: ClassVar[str] = "view"

    name: str = Field(description="The view's name; unique across all manifests read",
                      json_schema_extra={"pattern": "^" + DOCUMENT_NAME.pattern + "$"})


class ModelViewSpec(BaseModel):
    """``spec`` of a ModelView."""

    model_config = ConfigDict(extra="forbid")

    app: App = Field(description="The app whose folders the view fills")
    root: Optional[str] = Field(
        default=None, description="The app's root folder (hf-cache: the hub cache dir, default HF_HUB_CACHE); "
        "relative to the manifest's folder", json_schema_extra={"minLength": 1})
    link: LinkMode = Field(default=LinkMode.hardlink, description="hardlink (a copy across filesystems) | "
                           "symlink | copy | config (ComfyUI only: a section of extra_model_paths.yaml)")
    sets: Optional[list[str]] = Field(default=None, description="The model sets that appear (default: all read)")


@dataclass(frozen=True)
class ViewOrigin:
    """Where a ModelView was declared, with the positions of its spec's values."""

    file: Path
    line: int
    column: int
    fields: dict[str, tuple[int, int]]

    def location(self, field_name: str = "") -> str:
        line, column = self.fields.get(field_name, (self.line, self.column))
        return f"{self.file}:{line}:{column}"


class ModelView(BaseModel):
    """One ModelView document."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["reconciler/v1"]  # noqa: N815 - the manifest's own key
    kind: Literal["ModelView"]
    metadata: ModelViewMetadata
    spec: ModelViewSpec

    _origin: Optional[ViewOrigin] = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def origin(self) -> Optional[ViewOrigin]:
        return self._origin

    def root_path(self) -> Path:
        """The view's root, absolute (hf-cache without a root: huggingface_hub's HF_HUB_CACHE)."""
        if self.spec.root is None:
            from huggingface_hub import constants  # noqa: PLC0415 - only hf-cache views need it

            return Path(constants.HF_HUB_CACHE).absolute()
        root = Path(self.spec.root).expanduser()
        if not root.is_absolute():
            base = self._origin.file.parent if self._origin else Path.cwd()
            root = base / root
        return Path(os.path.abspath(root))
