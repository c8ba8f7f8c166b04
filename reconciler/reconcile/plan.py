"""The plan as a value: a closed set of actions, each with its reason.

`plan` computes a :class:`Plan`; `apply` executes exactly that value and nothing else
decides.  A saved plan (``plan --out``) carries the store's lineage and serial so that
apply can refuse it once the state has moved on, as Terraform does.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from reconciler.errors import PlanError

FORMAT_VERSION = 1


class ActionKind(str, Enum):
    """What apply will do to one model."""

    create = "create"  # not installed: install it
    update = "update"  # record fields only
    replace = "replace"  # new bytes: source, revision, variant, sha256 or type/base changed
    repair = "repair"  # drift: files missing or changed on disk
    adopt = "adopt"  # files already in place (or an unmanaged record): take ownership
    delete = "delete"  # prune: declared no more by a set that was read
    warm = "warm"  # load it after install
    noop = "noop"  # nothing to do
    view = "view"  # a ModelView's files to link, repair or unlink (its ``links``)
    error = "error"  # cannot be planned (bad source, unreachable hub): apply does nothing for it and fails it

    def __str__(self) -> str:
        return self.value


#: Terraform-like symbols for the text plan
SYMBOLS = {
    ActionKind.create: "+",
    ActionKind.update: "~",
    ActionKind.replace: "-/+",
    ActionKind.repair: "!",
    ActionKind.adopt: "<=",
    ActionKind.delete: "-",
    ActionKind.warm: "*",
    ActionKind.noop: " ",
    ActionKind.view: "@",
    ActionKind.error: "x",
}
#: symbols of a view's links, under the view's row
LINK_SYMBOLS = {"link": "+", "relink": "!", "unlink": "-"}

#: the order apply runs actions in: deletions go last, after everything new is in place
APPLY_ORDER = [
    ActionKind.error,  # nothing to run: reported failed first
    ActionKind.adopt,
    ActionKind.update,
    ActionKind.create,
    ActionKind.repair,
    ActionKind.replace,
    ActionKind.warm,
    ActionKind.view,  # after installs (links need the files), before deletions (links go first)
    ActionKind.delete,
    ActionKind.noop,
]


class PlannedFile(BaseModel):
    """A file the action reads from its source (path inside the source) and its size."""

    path: str
    size: int


class InstallSpec(BaseModel):
    """What apply needs to carry out an action without re-reading the manifests."""

    model_config = ConfigDict(extra="forbid")

    source_path: Optional[str] = None  # local source, absolute
    dest_path: Optional[str] = None  # where the files are (adopt) or will be
    inplace: bool = False
    sha256: Optional[str] = None
    config: dict[str, Any] = Field(default_factory=dict)  # record fields to write
    changes: dict[str, Any] = Field(default_factory=dict)  # update: only these fields
    refresh_files: bool = False  # update: re-read the file table (in-place files changed)
    remote: Optional[dict[str, Any]] = None  # a remote source's resolution (lock-file form)


class PlannedLink(BaseModel):
    """One file of a view to make (``link``), make again (``relink``: drift) or remove (``unlink``)."""

    op: str  # link | relink | unlink
    path: str  # the destination, absolute
    model: str = ""
    target: str = ""  # the model's file it is made from
    mode: str = ""  # hardlink | symlink | copy (a hardlink across filesystems is planned as copy)
    reason: str = ""
    pending: bool = False  # the model is (re)installed by this plan: its links are placed after that


class PlannedAction(BaseModel):
    """One action of the plan."""

    model_config = ConfigDict(use_enum_values=False)

    action: ActionKind
    set: str
    name: str
    source: Optional[str]
    reason: str
    key: Optional[str] = None
    download_bytes: int = 0
    write_bytes: int = 0
    files: list[PlannedFile] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    install: Optional[InstallSpec] = None
    result: Optional[str] = None
    #: why this model cannot be planned (``action`` is ``error``): one line naming the manifest
    #: place and the file or source
    error: Optional[str] = None
    #: a ModelView's row (``action`` view, noop or error): the view as declared and its links
    view: Optional[dict[str, Any]] = None
    links: list[PlannedLink] = Field(default_factory=list)
    #: the in-memory resolution (with metadata) of a remote action; not saved with the plan
    _resolved: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _error_iff_error_action(self) -> PlannedAction:
        if (self.action is ActionKind.error) != bool(self.error):
            raise ValueError(f"action {self.action.value} of '{self.name}': an 'error' field goes with "
                             "action 'error' and only with it")
        if self.action is ActionKind.error and self.install is not None:
            raise ValueError(f"action error of '{self.name}' carries an install spec")
        return self

    @property
    def changes_anything(self) -> bool:
        return self.action not in (ActionKind.noop, ActionKind.error)

    @property
    def is_error(self) -> bool:
        """True for a model that could not be planned: apply does nothing for it."""
        return self.action is ActionKind.error

    def public_dict(self, with_result: bool = False) -> dict[str, Any]:
        """The JSON shape of CLI.md (plus additive fields)."""
        data = {
            "action": self.action.value,
            "set": self.set,
            "name": self.name,
            "source": self.source,
            "reason": self.reason,
            "key": self.key,
            "download_bytes": self.download_bytes,
            "write_bytes": self.write_bytes,
            "files": [f.model_dump() for f in self.files],
            "notes": list(self.notes),
            "error": self.error,
        }
        if self.view is not None:
            data["view"] = dict(self.view)
            data["links"] = [link.model_dump() for link in self.links]
        if with_result:
            data["result"] = self.result
        return data


class Plan(BaseModel):
    """Everything apply will do, computed against one state of the store."""

    format_version: int = FORMAT_VERSION
    actions: list[PlannedAction] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    models_dir: str = ""
    store_lineage: str = ""
    store_serial: int = 0
    free_bytes: Optional[int] = None
    deletions_blocked_by: list[str] = Field(default_factory=list)  # flags needed: --allow-empty, --max-deletions

    # --- derived figures ------------------------------------------------------------------
    @property
    def download_bytes(self) -> int:
        return sum(a.download_bytes for a in self.actions)

    @property
    def write_bytes(self) -> int:
        return sum(a.write_bytes for a in self.actions)

    @property
    def has_changes(self) -> bool:
        return any(a.changes_anything for a in self.actions)

    @property
    def errors(self) -> list[PlannedAction]:
        """The actions of models that could not be planned (each fails alone at apply)."""
        return [a for a in self.actions if a.is_error]

    def count(self, kind: ActionKind) -> int:
        return sum(1 for a in self.actions if a.action is kind)

    def summary(self) -> dict[str, int]:
        data = {kind.value: self.count(kind) for kind in ActionKind}
        data["download_bytes"] = self.download_bytes
        return data

    def ordered_actions(self) -> list[PlannedAction]:
        """Actions in the order apply runs them."""
        rank = {kind: i for i, kind in enumerate(APPLY_ORDER)}
        return sorted(self.actions, key=lambda a: rank[a.action])

    # --- serialisation --------------------------------------------------------------------------
    def public_dict(self, with_results: bool = False) -> dict[str, Any]:
        """The document `plan -o json` prints."""
        return {
            "format_version": self.format_version,
            "actions": [a.public_dict(with_result=with_results) for a in self.actions],
            "summary": self.summary(),
            "warnings": list(self.warnings),
            "write_bytes": self.write_bytes,
            "free_bytes": self.free_bytes,
        }

    def save(self, path: Path) -> None:
        """Write the whole plan (with what apply needs) for `apply PLANFILE`."""
        # "kind" first, so that is_plan_file recognises the file from its first bytes
        doc = {"kind": "reconciler-plan", **self.model_dump(mode="json")}
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan written by :meth:`save`; a clear PlanError for anything else."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: not a saved plan ({exc})") from exc
        if not isinstance(doc, dict) or doc.pop("kind", None) != "reconciler-plan":
            raise PlanError(f"{path}: not a saved plan (write one with `reconciler plan --out FILE`)")
        if doc.get("format_version") != FORMAT_VERSION:
            raise PlanError(f"{path}: saved plan format {doc.get('format_version')} is not supported")
        try:
            return cls.model_validate(doc)
        except ValueError as exc:
            raise PlanError(f"{path}: saved plan is damaged: {exc}") from exc


def is_plan_file(path: Path) -> bool:
    """True when ``path`` is a JSON file holding a saved plan (``"kind": "reconciler-plan"``)."""
    if not path.is_file() or path.suffix.lower() in (".yaml", ".yml"):
        return False
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if not head.lstrip().startswith("{"):
        return False
    if '"reconciler-plan"' in head:
        return True
    try:  # a plan saved with sorted keys (before "kind" came first) has it further down
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("kind") == "reconciler-plan"
