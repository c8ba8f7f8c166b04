"""Planning for remote sources (Hugging Face, Civitai, URL): resolve, or follow the lock.

A remote entry is resolved once per plan: from the lock file when it pins this entry
(no network), else through the source's API.  The plan carries the resolution, so apply
downloads exactly the files the plan showed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace as dc_replace
from typing import Any, Optional

from reconciler.errors import PlanError, ReconcilerError
from reconciler.reconcile.lockfile import LockedModel, LockFile
from reconciler.reconcile.manifest import ModelEntry, ModelSet
from reconciler.reconcile.observe import ModelState, ObservedModel
from reconciler.reconcile.plan import ActionKind, InstallSpec, PlannedAction, PlannedFile
from reconciler.settings import AppSettings
from reconciler.sources.resolved import ResolvedSource

Resolver = Callable[[Any], ResolvedSource]


def resolved_to_spec(resolved: ResolvedSource, set_name: str, source_digest: str) -> dict[str, Any]:
    """A JSON-ready form of a resolution (what a saved plan carries; no URL, no token)."""
    return LockedModel.from_resolved(set_name, source_digest, resolved).model_dump(mode="json")


def spec_to_resolved(data: dict[str, Any], source: Any, settings: AppSettings) -> ResolvedSource:
    """Rebuild a ResolvedSource from :func:`resolved_to_spec` output."""
    return LockedModel.model_validate(data).to_resolved(source, settings)


class RemotePlanner:
    """Resolves remote entries and plans their actions."""

    def __init__(self, settings: AppSettings, resolver: Resolver, lock: Optional[LockFile]) -> None:
        self.settings = settings
        self.resolver = resolver
        self.lock = lock
        self.resolved: dict[str, ResolvedSource] = {}

    def resolve(self, model_set: ModelSet, entry: ModelEntry) -> tuple[ResolvedSource, list[str]]:
        """The entry's resolution and notes: from the lock when it pins this entry."""
        locked = self.lock.models.get(entry.name) if self.lock else None
        if locked is not None and locked.source_digest == entry.source_digest():
            resolved = locked.to_resolved(entry.model_source, self.settings)
            notes: list[str] = []
        else:
            try:
                resolved = self.resolver(entry.model_source)
            except ReconcilerError as exc:
                where = entry.origin.location("source") if entry.origin else entry.name
                raise PlanError(f"{where}: model '{entry.name}': {exc}") from exc
            why = "changed since the lock" if locked is not None else "not in the lock file"
            notes = [f"{why}: resolved now to {resolved.revision or 'the current files'} "
                     "(run `reconciler lock` to pin it)"] if self.lock is not None else []
        if entry.sha256:
            resolved = _with_declared_sha256(resolved, entry)
        self.resolved[entry.name] = resolved
        return resolved, [*resolved.notes, *notes]

    def plan_new(self, model_set: ModelSet, entry: ModelEntry, config: dict[str, Any]) -> PlannedAction:
        resolved, notes = self.resolve(model_set, entry)
        spec = InstallSpec(config=config, sha256=entry.sha256,
                           remote=resolved_to_spec(resolved, model_set.metadata.name, entry.source_digest()))
        action = PlannedAction(
            action=ActionKind.create, set=model_set.metadata.name, name=entry.name, source=str(entry.model_source),
            reason="not installed", files=_planned_files(resolved), notes=notes,
            download_bytes=resolved.download_bytes, write_bytes=resolved.download_bytes, install=spec,
        )
        action._resolved = resolved
        return action

    def plan_existing(self, model_set: ModelSet, entry: ModelEntry, observed: ObservedModel,
                      config: dict[str, Any], replace_reasons: list[str]) -> Optional[PlannedAction]:
        """replace or repair for a remote entry, or None when its bytes are right."""
        record = observed.record
        resolved, notes = self.resolve(model_set, entry)
        if record.source == str(entry.model_source) and record.source_revision != resolved.revision:
            replace_reasons.append(f"revision {record.source_revision or 'unknown'} -> {resolved.revision}")
        base = PlannedAction(
            action=ActionKind.replace, set=model_set.metadata.name, name=entry.name,
            source=str(entry.model_source), reason="", key=record.key, notes=notes,
        )
        if replace_reasons:
            spec = InstallSpec(config=config, sha256=entry.sha256,
                               remote=resolved_to_spec(resolved, model_set.metadata.name, entry.source_digest()))
            action = base.model_copy(update={
                "reason": "; ".join(replace_reasons), "install": spec, "files": _planned_files(resolved),
                "download_bytes": resolved.download_bytes, "write_bytes": resolved.download_bytes,
            })
            action._resolved = resolved
            return action
        if observed.files_state is ModelState.in_sync:
            return None
        broken = set(observed.missing_files) | set(observed.changed_files)
        wanted = [f for f in resolved.files if (("" if resolved.single_file else f.dest) in broken)]
        if not wanted or observed.files_state is ModelState.missing:
            wanted = list(resolved.files)  # the whole model is gone: fetch all of it
        subset = dc_replace(resolved, files=wanted)
        spec = InstallSpec(config=config, sha256=entry.sha256,
                           remote=resolved_to_spec(subset, model_set.metadata.name, entry.source_digest()))
        action = base.model_copy(update={
            "action": ActionKind.repair, "reason": observed.drift_summary(), "install": spec,
            "files": _planned_files(subset), "download_bytes": subset.download_bytes,
            "write_bytes": subset.download_bytes,
        })
        action._resolved = subset  # the manifest's source: a URL's own secret, a pasted link's token
        return action


def _planned_files(resolved: ResolvedSource) -> list[PlannedFile]:
    return [PlannedFile(path=f.path, size=f.size or 0) for f in resolved.files]


def _with_declared_sha256(resolved: ResolvedSource, entry: ModelEntry) -> ResolvedSource:
    """Check a manifest's sha256 against the source's, and make downloads verify it."""
    if not resolved.single_file:
        raise PlanError(f"{entry.origin.location('sha256') if entry.origin else entry.name}: "
                        f"model '{entry.name}': sha256 applies to single-file sources only")
    (first,) = resolved.files
    declared = (entry.sha256 or "").lower()
    if first.sha256 and first.sha256 != declared:
        raise PlanError(
            f"{entry.origin.location('sha256') if entry.origin else entry.name}: model '{entry.name}': "
            f"declared sha256 {declared} differs from the source's {first.sha256}"
        )
    return dc_replace(resolved, files=[dc_replace(first, sha256=declared)])
