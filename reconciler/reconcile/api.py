"""The reconciler as a library: `plan()` and `apply()`, what the CLI calls too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from reconciler.errors import LockFileError
from reconciler.events import EventHandler
from reconciler.reconcile.apply import (
    ActionCallback,
    ApplyResult,
    apply_plan,
    ensure_writable,
    models_dir_lock,
)
from reconciler.reconcile.lockfile import LockedModel, LockFile, read_lock, write_lock
from reconciler.reconcile.manifest import Manifest, ModelEntry, load_manifests
from reconciler.reconcile.plan import Plan
from reconciler.reconcile.planner import Planner, PlanOptions
from reconciler.reconcile.services import open_services
from reconciler.settings import AppSettings, load_settings
from reconciler.sources.base import LocalModelSource
from reconciler.sources.resolve import complete_digests


def manifest_paths(paths: Sequence[Path | str], settings: AppSettings) -> list[Path]:
    """The manifest paths given, or the settings' default (``./manifests``)."""
    return [Path(p) for p in paths] if paths else list(settings.manifests)


def read_manifests(paths: Sequence[Path | str], settings: AppSettings) -> Manifest:
    """The manifests for plan/apply/validate: a ManifestError stops everything, but a local
    source that does not exist is left to the planner, as that one model's error."""
    return load_manifests(manifest_paths(paths, settings), check_local_sources=False)


def plan(
    paths: Sequence[Path | str] = (),
    settings: Optional[AppSettings] = None,
    options: Optional[PlanOptions] = None,
    manifest: Optional[Manifest] = None,
) -> Plan:
    """Compute the plan for the manifests at ``paths``; changes nothing on disk."""
    settings = settings or load_settings()
    manifest = manifest or read_manifests(paths, settings)
    lock = read_lock(settings.lock)
    with open_services(settings, create=False) as services:
        planner = Planner(services.installer, lock=lock)
        result = planner.plan(manifest, options or PlanOptions(max_deletions=settings.max_deletions))
        if not services.store_exists:
            result.store_lineage, result.store_serial = "", 0
        return result


def apply(
    paths: Sequence[Path | str] = (),
    settings: Optional[AppSettings] = None,
    options: Optional[PlanOptions] = None,
    saved_plan: Optional[Plan] = None,
    on_action: Optional[ActionCallback] = None,
    locked: bool = False,
    event_handlers: Sequence[EventHandler] = (),
    on_plan: Optional[Callable[[Plan], None]] = None,
    manifest: Optional[Manifest] = None,
    loader: Any = None,
    download_queue: Any = None,
) -> ApplyResult:
    """Plan (or take ``saved_plan``) and execute it under the models dir's lock.

    With ``locked``, refuse unless the lock file pins every remote model exactly as the
    manifests declare it now.  ``event_handlers`` receive the install service's events
    (``model_install_downloading`` and the rest), e.g. to draw progress bars; ``on_plan``
    sees the plan that is about to run, before anything changes.  A long-running caller
    (``watch``) passes its own ``loader`` (a ModelLoadService, so warmed models stay in its
    RAM cache) and ``download_queue`` (to pause its downloads on shutdown).
    """
    settings = settings or load_settings()
    options = options or PlanOptions(max_deletions=settings.max_deletions)
    if saved_plan is not None:
        manifest = None
    elif manifest is None:
        manifest = read_manifests(paths, settings)
    lock = read_lock(settings.lock)
    if locked:
        if manifest is None:
            raise LockFileError("--locked checks manifests against the lock file; it cannot be used with a saved plan")
        check_locked(manifest, lock, settings.lock)
    ensure_writable(settings.models_dir)
    with models_dir_lock(settings.apply_lock_path, settings.apply_lock_timeout):
        with open_services(settings, create=True, download_queue=download_queue) as services:
            for handler in event_handlers:
                services.installer.event_bus.subscribe(handler)
            services.installer.prepare()
            if saved_plan is not None:
                the_plan = saved_plan
                if the_plan.store_lineage == "":  # planned before the store existed
                    if services.store.serial == 0:
                        the_plan.store_lineage = services.store.lineage
            else:
                assert manifest is not None
                the_plan = Planner(services.installer, lock=lock).plan(manifest, options)
                the_plan.store_lineage, the_plan.store_serial = services.store.lineage, services.store.serial
            if on_plan is not None:
                on_plan(the_plan)
            return apply_plan(
                services.installer,
                the_plan,
                allow_empty=options.allow_empty,
                max_deletions=options.max_deletions,
                saved=saved_plan is not None,
                on_action=on_action,
                loader=loader,
            )


def remote_entries(manifest: Manifest) -> list[tuple[str, ModelEntry]]:
    """(set name, entry) of every remote entry; local sources are not locked."""
    return [(s.metadata.name, e) for s, e in manifest.entries() if not isinstance(e.model_source, LocalModelSource)]


def check_locked(manifest: Manifest, lock: Optional[LockFile], lock_path: Path) -> None:
    """LockFileError unless ``lock`` pins every remote entry as declared now (``--locked``)."""
    if lock is None:
        raise LockFileError(f"--locked: lock file {lock_path} does not exist; run `reconciler lock`")
    problems = []
    declared = set()
    for _set_name, entry in remote_entries(manifest):
        declared.add(entry.name)
        locked = lock.models.get(entry.name)
        if locked is None:
            problems.append(f"'{entry.name}' is not locked")
        elif locked.source_digest != entry.source_digest():
            problems.append(f"'{entry.name}' changed since the lock")
    problems += [f"'{name}' is locked but no longer declared" for name in sorted(set(lock.models) - declared)]
    if problems:
        raise LockFileError(f"--locked: the manifests changed since {lock_path} was written: "
                            + "; ".join(problems) + "; run `reconciler lock`")


def lock(
    paths: Sequence[Path | str] = (),
    settings: Optional[AppSettings] = None,
    upgrade: bool = False,
    targets: Sequence[str] = (),
) -> tuple[LockFile, list[str]]:
    """Resolve remote sources not yet locked (all, or ``targets``, with ``upgrade``) and write
    the lock file. Returns the lock and the names that were (re)resolved."""
    settings = settings or load_settings()
    manifest = read_manifests(paths, settings)  # local sources are not locked
    old = read_lock(settings.lock) or LockFile()
    unknown = set(targets) - {e.name for _s, e in manifest.entries()}
    if unknown:
        raise LockFileError(f"--target names no declared model: {', '.join(sorted(unknown))}")
    new = LockFile()
    resolved_names: list[str] = []
    with open_services(settings, create=False) as services:
        for set_name, entry in remote_entries(manifest):
            name = entry.name
            current = old.models.get(name)
            again = upgrade and (not targets or name in targets)
            if current is not None and current.source_digest == entry.source_digest() and not again:
                new.models[name] = current.model_copy(update={"set": set_name})
                continue
            try:
                resolved = complete_digests(services.installer.resolve(entry.model_source), settings)
            except Exception as exc:
                where = entry.origin.location("source") if entry.origin else name
                raise LockFileError(f"{where}: model '{name}': {exc}") from exc
            new.models[name] = LockedModel.from_resolved(set_name, entry.source_digest(), resolved)
            resolved_names.append(name)
    write_lock(settings.lock, new)
    return new, resolved_names
