"""Diff the declared state (manifests) against the observed one and produce a Plan.

Nothing here writes: the planner only reads manifests, records and file metadata (and
probes local sources whose bytes will move, to know where they go and that they are models).
Models are independent: one that cannot be planned is an ``error`` action, never an
exception that stops the others.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase, canonical_field_names
from reconciler.errors import ManifestError, PlanError, ReconcilerError
from reconciler.install.landing import PROBED_KEYS
from reconciler.install.local_paths import local_fingerprint
from reconciler.install.paths import install_destination, is_inside, record_path, resolve_model_path
from reconciler.install.service import ModelInstallService
from reconciler.probe.hashing import fast_hash
from reconciler.probe.probe import probe_model
from reconciler.reconcile.lockfile import LockFile
from reconciler.reconcile.manifest import Manifest, ModelEntry, ModelSet
from reconciler.reconcile.observe import ModelState, ObservedModel, observe_model
from reconciler.reconcile.plan import ActionKind, InstallSpec, Plan, PlannedAction, PlannedFile
from reconciler.reconcile.prune import plan_prune, records_kept_for_errors
from reconciler.reconcile.remote import RemotePlanner, Resolver
from reconciler.reconcile.views import plan_views
from reconciler.reconcile.warm import plan_warm_actions
from reconciler.sources.base import LocalModelSource

log = logging.getLogger(__name__)

#: record fields a manifest entry sets directly (type/base/format move files: see _byte_changes)
FIELD_KEYS = ("description", "tags")


@dataclass
class PlanOptions:
    """What the user asked of this plan."""

    prune: bool = True
    targets: Sequence[str] = ()
    allow_empty: bool = False
    max_deletions: int = 10


@dataclass
class _Index:
    by_owner: dict[tuple[str, str], ModelConfigBase] = field(default_factory=dict)
    by_path: dict[str, ModelConfigBase] = field(default_factory=dict)


def desired_fields(model_set: ModelSet, entry: ModelEntry) -> dict[str, Any]:
    """The record fields the manifest asks for (besides what the prober decides)."""
    data: dict[str, Any] = {
        "name": entry.name,
        "source": str(entry.model_source),
        "managed_by": model_set.metadata.name,
        "manifest_digest": entry.digest(),
        "description": entry.description,
        "tags": list(entry.tags or []),
    }
    for key in ("type", "base", "format"):
        value = getattr(entry, key, None)
        if value is not None:
            data[key] = value.value if hasattr(value, "value") else value
    data.update(entry.config_overrides())
    return data


def _enum_str(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _field_changes(record: ModelConfigBase, wanted: dict[str, Any]) -> dict[str, Any]:
    """Record fields whose value differs from what the manifest wants (no bytes move)."""
    current = record.model_dump(mode="json")
    changes: dict[str, Any] = {}
    skip = {"type", "base", "format", "manifest_digest", "managed_by", "name", "source"}
    for key, value in wanted.items():
        if key in skip:
            continue
        if key == "tags":
            if sorted(current.get("tags") or []) != sorted(value or []):
                changes[key] = value
        elif key in current and _enum_str(current[key]) != _enum_str(value):
            changes[key] = value
    return changes


def _byte_changes(record: ModelConfigBase, wanted: dict[str, Any]) -> list[str]:
    """Declared type/base/format that differ from the record: the files move, so replace."""
    reasons = []
    for key in ("type", "base", "format"):
        if key in wanted and _enum_str(getattr(record, key)) != _enum_str(wanted[key]):
            reasons.append(f"{key} {_enum_str(getattr(record, key))} -> {_enum_str(wanted[key])}")
    return reasons


def _tree_files(path: Path) -> list[PlannedFile]:
    if path.is_file():
        return [PlannedFile(path=path.name, size=path.stat().st_size)]
    files = [
        PlannedFile(path=p.relative_to(path).as_posix(), size=p.stat().st_size)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    ]
    return files


def free_space(path: Path) -> int:
    """Free bytes on the filesystem that holds ``path`` (or its nearest existing parent)."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


class Planner:
    """Computes a Plan from manifests, the record store and the disk."""

    def __init__(self, installer: ModelInstallService, lock: Optional[LockFile] = None,
                 resolver: Optional[Resolver] = None) -> None:
        self.installer = installer
        self.store = installer.record_store
        self.models_dir = installer.models_dir
        self.remote = RemotePlanner(installer.app_config, resolver or installer.resolve, lock)

    def plan(self, manifest: Manifest, options: Optional[PlanOptions] = None) -> Plan:
        """Compute the plan.  A declared model that cannot be planned (a local source that is
        missing or not a model, a remote source that cannot be resolved) becomes an ``error``
        action of its own, and an installed one keeps its record and files; only an unknown
        ``--target`` raises (PlanError)."""
        options = options or PlanOptions()
        records = self.store.all_models()
        all_files = self.store.all_files()
        index = _Index()
        for rec in records:
            if rec.managed_by is not None:
                index.by_owner[(rec.managed_by, rec.name)] = rec
            index.by_path[rec.path] = rec
        targets = set(options.targets)
        unknown_targets = targets - {e.name for _s, e in manifest.entries()} - {r.name for r in records}
        if unknown_targets:
            raise PlanError(f"--target names no declared or installed model: {', '.join(sorted(unknown_targets))}")

        plan = Plan(
            models_dir=str(self.models_dir),
            store_lineage=self.store.lineage,
            store_serial=self.store.serial,
        )
        declared = {(model_set.metadata.name, entry.name) for model_set, entry in manifest.entries()}
        read_sets = set(manifest.set_names)
        claimed: set[str] = set()
        for model_set, entry in manifest.entries():
            if targets and entry.name not in targets:
                continue
            record = index.by_owner.get((model_set.metadata.name, entry.name))
            try:
                action = self._plan_entry(model_set, entry, record, index, declared, read_sets, all_files)
            except Exception as exc:  # noqa: BLE001 - one model that cannot be planned fails alone
                action = _error_action(model_set, entry, record, exc)
            if action.key:
                claimed.add(action.key)  # never a prune candidate, whatever else happens
            plan.actions.append(action)

        protected = records_kept_for_errors(plan, records, claimed, declared, read_sets)
        plan_prune(manifest, [r for r in records if r.key not in claimed | protected], declared, targets, plan,
                   prune=options.prune, allow_empty=options.allow_empty, max_deletions=options.max_deletions)
        plan.actions.extend(plan_warm_actions(manifest, plan.actions, index.by_owner, targets))
        plan.actions.extend(plan_views(self.installer, manifest, plan, prune=options.prune, targets=options.targets))
        plan.free_bytes = free_space(self.models_dir)
        if plan.write_bytes > (plan.free_bytes or 0):
            plan.warnings.append(
                f"the plan writes {plan.write_bytes} bytes but {self.models_dir} has only {plan.free_bytes} bytes free"
            )
        return plan

    # --- one declared entry -----------------------------------------------------------------
    def _plan_entry(
        self,
        model_set: ModelSet,
        entry: ModelEntry,
        record: Optional[ModelConfigBase],
        index: _Index,
        declared: set[tuple[str, str]],
        read_sets: set[str],
        all_files: dict[str, Any],
    ) -> PlannedAction:
        """The action for one declared entry; raises for an entry that cannot be planned."""
        if not isinstance(entry.model_source, LocalModelSource):
            if record is None:
                return self.remote.plan_new(model_set, entry, desired_fields(model_set, entry))
            observed = observe_model(self.models_dir, record, all_files.get(record.key, []))
            return self._plan_existing_remote(model_set, entry, observed)
        if record is None:
            return self._plan_new(model_set, entry, index, declared, read_sets)
        observed = observe_model(self.models_dir, record, all_files.get(record.key, []))
        return self._plan_existing(model_set, entry, observed)

    def _local_source(self, entry: ModelEntry) -> LocalModelSource:
        return existing_local_source(entry)

    def _probe(self, entry: ModelEntry, path: Path, wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        try:
            return self.installer.probe(path, wanted)
        except ReconcilerError as exc:
            raise PlanError(f"{_where(entry)}model '{entry.name}': {exc}") from exc

    def _plan_new(
        self,
        model_set: ModelSet,
        entry: ModelEntry,
        index: _Index,
        declared: set[tuple[str, str]],
        read_sets: set[str],
    ) -> PlannedAction:
        source = self._local_source(entry)
        src = Path(source.path)
        inplace = bool(entry.inplace)
        wanted = desired_fields(model_set, entry)
        data, notes = self._probe(entry, src, wanted)
        files = _tree_files(src)
        base = PlannedAction(
            action=ActionKind.create, set=model_set.metadata.name, name=entry.name, source=str(source),
            reason="not installed", files=files, notes=notes,
        )
        if inplace:
            dest = src.absolute()
            write = 0
        else:
            dest = install_destination(self.models_dir, data["base"], data["type"], data["name"], src)
            write = sum(f.size for f in files)
        spec = InstallSpec(
            source_path=str(src.absolute()), dest_path=str(dest), inplace=inplace, sha256=entry.sha256,
            config=wanted,
        )
        existing = index.by_path.get(record_path(self.models_dir, dest)) or index.by_path.get(str(dest))
        if existing is not None:
            owner = existing.managed_by
            if owner is not None and owner in read_sets and (owner, existing.name) not in declared:
                # the same files under a new name (or moved to another set that was read)
                moved = f"renamed from '{existing.name}'" if owner == model_set.metadata.name else (
                    f"moves from set '{owner}' (was '{existing.name}')")
                spec.changes = {k: v for k, v in spec.config.items() if k not in ("type", "base", "format")}
                return base.model_copy(update={
                    "action": ActionKind.update, "key": existing.key, "install": spec, "reason": moved,
                    "files": [],
                })
            if owner is not None:
                raise PlanError(
                    f"{_where(entry)}model '{entry.name}' would install at {dest}, "
                    f"which set '{existing.managed_by}' already manages as '{existing.name}'"
                )
            return base.model_copy(update={
                "action": ActionKind.adopt, "key": existing.key, "install": spec,
                "reason": f"unmanaged record '{existing.name}' at {existing.path} becomes managed",
            })
        if inplace and is_inside(src, self.models_dir):
            return base.model_copy(update={
                "action": ActionKind.adopt, "install": spec,
                "reason": "files already in the models dir, no record: registered in place",
            })
        if not inplace and dest.exists():
            if fast_hash(dest) == fast_hash(src):
                return base.model_copy(update={
                    "action": ActionKind.adopt, "install": spec,
                    "reason": f"files already in place at {record_path(self.models_dir, dest)}, no record",
                })
            base.notes.append(f"{dest} exists, holds other bytes and no record owns it: apply will refuse to overwrite it")
        return base.model_copy(update={"install": spec, "write_bytes": write})

    def _plan_existing(self, model_set: ModelSet, entry: ModelEntry, observed: ObservedModel) -> PlannedAction:
        record = observed.record
        source = self._local_source(entry)
        src = Path(source.path)
        wanted = desired_fields(model_set, entry)
        inplace = bool(entry.inplace)
        action = PlannedAction(
            action=ActionKind.noop, set=model_set.metadata.name, name=entry.name, source=str(source),
            reason="in sync", key=record.key,
        )
        spec = InstallSpec(
            source_path=str(src.absolute()), inplace=inplace, sha256=entry.sha256, config=wanted,
            dest_path=str(resolve_model_path(self.models_dir, record)),
        )

        def copy_plan() -> dict[str, Any]:
            """Files and bytes of copying the source in (walked only when bytes move)."""
            files = _tree_files(src)
            return {"files": files, "write_bytes": 0 if inplace else sum(f.size for f in files)}

        same_files = observed.path.absolute() == src.absolute()
        if record.inplace != inplace and same_files and record.source == str(source):
            # the entry points at the record's own files: only the ownership flag changes
            spec.changes = {**_field_changes(record, wanted), "inplace": inplace,
                            "manifest_digest": wanted["manifest_digest"]}
            return action.model_copy(update={
                "action": ActionKind.update, "install": spec,
                "reason": "inplace " + ("on: the files become the user's" if inplace else "off: the record owns the files"),
            })
        replace_reasons: list[str] = []
        if record.source != str(source):
            replace_reasons.append(f"source changed: {record.source} -> {source}")
        if record.inplace != inplace:
            replace_reasons.append("inplace " + ("on" if inplace else "off"))
        replace_reasons += _byte_changes(record, wanted)
        if entry.sha256 and not inplace and not _sha_matches(observed, entry.sha256):
            replace_reasons.append("declared sha256 differs from the installed bytes")
        if not replace_reasons and not inplace and record.source_fingerprint != local_fingerprint(src):
            if record.hash != fast_hash(src):
                replace_reasons.append("source files changed")
        if replace_reasons:
            # new bytes: a source that is not a model fails here, before the installed one is touched
            _data, notes = self._probe(entry, src, wanted)
            return action.model_copy(update={
                "action": ActionKind.replace, "reason": "; ".join(replace_reasons), "install": spec,
                "notes": notes, **copy_plan(),
            })

        files_state = observed.files_state
        if files_state is not ModelState.in_sync:
            if inplace:
                if files_state is ModelState.missing:
                    raise PlanError(f"{_where(entry)}model '{entry.name}': in-place files are missing at "
                                    f"{observed.path}; the record is kept as it is")
                self._probe(entry, src, wanted)  # changed in place: still a model?
                spec.refresh_files = True
                spec.changes = _field_changes(record, wanted)
                return action.model_copy(update={
                    "action": ActionKind.update, "install": spec,
                    "reason": f"in-place files changed ({observed.drift_summary()}); the record is refreshed",
                })
            return action.model_copy(update={
                "action": ActionKind.repair, "reason": observed.drift_summary(), "install": spec,
                **copy_plan(),
            })

        changes = _field_changes(record, wanted)
        if changes:
            spec.changes = {**changes, "manifest_digest": wanted["manifest_digest"]}
            return action.model_copy(update={
                "action": ActionKind.update, "install": spec,
                "reason": "fields changed: " + ", ".join(sorted(changes)),
            })
        return action

    def _plan_existing_remote(self, model_set: ModelSet, entry: ModelEntry, observed: ObservedModel) -> PlannedAction:
        record = observed.record
        wanted = desired_fields(model_set, entry)
        reasons: list[str] = []
        if record.source != str(entry.model_source):
            reasons.append(f"source changed: {record.source} -> {entry.model_source}")
        reasons += _byte_changes(record, wanted)
        action = self.remote.plan_existing(model_set, entry, observed, wanted, reasons)
        if action is not None:
            return action
        noop = PlannedAction(action=ActionKind.noop, set=model_set.metadata.name, name=entry.name,
                             source=str(entry.model_source), reason="in sync", key=record.key)
        changes = _field_changes(record, wanted)
        if changes:
            spec = InstallSpec(config=wanted, changes={**changes, "manifest_digest": wanted["manifest_digest"]})
            return noop.model_copy(update={
                "action": ActionKind.update, "install": spec, "reason": "fields changed: " + ", ".join(sorted(changes)),
            })
        return noop


def _sha_matches(observed: ObservedModel, sha256: str) -> bool:
    single = [f for f in observed.files if f.path == ""]
    return bool(single) and single[0].sha256 == sha256.lower()


def existing_local_source(entry: ModelEntry) -> LocalModelSource:
    """The entry's local source; PlanError (naming the manifest place) when it does not exist."""
    source = entry.model_source
    assert isinstance(source, LocalModelSource), "remote entries are planned by RemotePlanner"
    if not os.path.exists(source.path):
        given, resolved = str(entry.source), str(source.path)
        clip = (lambda t: t if len(t) <= 200 else f"{t[:200]}... ({len(t):,} characters)")  # noqa: E731 - hostile input
        raise PlanError(f"{_where(entry)}model '{entry.name}': local source {clip(given)} does not exist"
                        + ("" if given == resolved else f" (resolved to {clip(resolved)})"))
    return source


def check_local_entries(manifest: Manifest) -> list[str]:
    """What `validate` adds to the manifest checks: each local source exists and is a model
    the prober can identify (with the entry's type/base/format).  No network, no store.

    One line per entry that cannot be used, as the plan's error rows word it.
    """
    problems = []
    for model_set, entry in manifest.entries():
        try:
            if not isinstance(entry.model_source, LocalModelSource):
                continue
            source = existing_local_source(entry)
            config = canonical_field_names(desired_fields(model_set, entry))
            overrides = {k: config[k] for k in PROBED_KEYS if config.get(k) is not None}
            try:
                probe_model(Path(source.path), overrides)
            except ReconcilerError as exc:
                raise PlanError(f"{_where(entry)}model '{entry.name}': {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - every bad entry gets its line
            log.debug("cannot use '%s'", entry.name, exc_info=True)
            problems.append(entry_error_message(entry, exc))
    return problems


def _where(entry: ModelEntry, field_name: str = "source") -> str:
    """``file:line:col: `` of an entry's field, for messages (empty without an origin)."""
    return f"{entry.origin.location(field_name)}: " if entry.origin is not None else ""


def entry_error_message(entry: ModelEntry, exc: BaseException) -> str:
    """One line saying why ``entry`` cannot be planned: the manifest place, the model, the cause.

    PlanError and ManifestError already carry the place (the planner and the remote planner
    write them so); anything else gets it here.
    """
    if isinstance(exc, (PlanError, ManifestError)):
        text = str(exc)
    elif isinstance(exc, (ReconcilerError, OSError)):
        text = f"{_where(entry)}model '{entry.name}': {exc}"
    else:
        text = f"{_where(entry)}model '{entry.name}': unexpected {type(exc).__name__}: {exc} (-v shows the traceback)"
    return " ".join(text.split())


def _error_action(model_set: ModelSet, entry: ModelEntry, record: Optional[ModelConfigBase],
                  exc: BaseException) -> PlannedAction:
    """The plan's row for an entry that cannot be planned: apply does nothing for it.

    An installed model keeps its record and files (``key`` names it, so prune never sees it).
    """
    expected = isinstance(exc, (ReconcilerError, OSError))
    log.log(logging.DEBUG if expected else logging.INFO, "cannot plan '%s'", entry.name, exc_info=True)
    message = entry_error_message(entry, exc)
    try:
        source = str(entry.model_source)
    except ReconcilerError:
        source = str(entry.source)
    return PlannedAction(
        action=ActionKind.error, set=model_set.metadata.name, name=entry.name, source=source,
        reason="cannot be planned: " + ("the installed model is left as it is" if record is not None else "nothing is done for it"),
        key=record.key if record is not None else None, error=message,
    )
