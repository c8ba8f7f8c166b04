"""Execute a Plan: the only place the reconciler changes disk and records.

Apply holds an exclusive lock on the models dir for its whole run, refuses a plan made
against another state of the store, checks the guards (``--allow-empty``,
``--max-deletions``, free space) before changing anything, then runs every action.  A
failed action is reported and the independent ones still run; an ``error`` action (a model
the planner could not plan) is reported failed and nothing is done for it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from filelock import FileLock
from filelock import Timeout as FileLockTimeout

from reconciler.errors import (
    ApplyGuardError,
    InstallError,
    InsufficientDiskSpaceError,
    ModelsDirLockedError,
    ModelsDirNotWritableError,
    ReconcilerError,
    StalePlanError,
)
from reconciler.install.jobs import ModelInstallJob
from reconciler.install.local_paths import local_fingerprint
from reconciler.install.service import ModelInstallService
from reconciler.reconcile.plan import ActionKind, Plan, PlannedAction
from reconciler.reconcile.planner import free_space
from reconciler.reconcile.remote import spec_to_resolved
from reconciler.reconcile.views import execute_view
from reconciler.reconcile.warm import WarmRunner
from reconciler.sources.parse import parse_source

log = logging.getLogger(__name__)

ActionCallback = Callable[[PlannedAction], None]


@dataclass
class ApplyResult:
    """The executed plan (each action with its ``result``) and whether all succeeded."""

    plan: Plan

    @property
    def failed(self) -> list[PlannedAction]:
        return [a for a in self.plan.actions if a.result and a.result.startswith("error")]

    @property
    def ok(self) -> bool:
        return not self.failed


def ensure_writable(models_dir: Path) -> None:
    """Create the models dir and its state folder, or fail with a clear message."""
    try:
        (models_dir / ".reconciler" / "tmp").mkdir(parents=True, exist_ok=True)
        # a name of its own: two applies starting at once must not remove each other's probe
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=models_dir / ".reconciler")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ModelsDirNotWritableError(f"models dir {models_dir} cannot be written: {exc.strerror or exc}") from exc


@contextmanager
def models_dir_lock(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold the models dir's apply lock; a second apply waits ``timeout`` s, then fails."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=timeout)
    except FileLockTimeout:
        raise ModelsDirLockedError(
            f"another apply holds {lock_path} (waited {timeout:g} s); try again when it has finished"
        ) from None
    try:
        yield
    finally:
        lock.release()


def check_guards(plan: Plan, allow_empty: bool, max_deletions: int) -> None:
    """Raise ApplyGuardError naming the flag that would let the plan through."""
    deletions = plan.count(ActionKind.delete)
    if "--allow-empty" in plan.deletions_blocked_by and not allow_empty:
        msg = next((w for w in plan.warnings if "--allow-empty" in w), "a set declares no models")
        raise ApplyGuardError(f"nothing changed: {msg}")
    if deletions > max_deletions:
        raise ApplyGuardError(
            f"nothing changed: the plan deletes {deletions} models, more than --max-deletions {max_deletions}; "
            f"re-run with --max-deletions {deletions} if that is intended"
        )
    if plan.write_bytes:
        free = free_space(Path(plan.models_dir))
        if plan.write_bytes > free:
            raise InsufficientDiskSpaceError(
                f"nothing changed: the plan writes {plan.write_bytes} bytes but {plan.models_dir} has {free} bytes free"
            )


def check_not_stale(plan: Plan, installer: ModelInstallService) -> None:
    """Refuse a saved plan made against another store or an older state of it."""
    store = installer.record_store
    if plan.store_lineage == "" and store.serial != 0:
        raise StalePlanError(
            "saved plan was made before the record store existed, and the store has changed since; "
            "run `reconciler plan` again"
        )
    if plan.store_lineage != store.lineage:
        raise StalePlanError(
            "saved plan was made against another record store (lineage differs); run `reconciler plan` again"
        )
    if plan.store_serial != store.serial:
        raise StalePlanError(
            f"saved plan is stale: the record store changed since it was made (serial {plan.store_serial} -> "
            f"{store.serial}); run `reconciler plan` again"
        )


def execute_action(installer: ModelInstallService, action: PlannedAction) -> str:
    """Carry out one action; returns its result text (raises on failure)."""
    spec = action.install
    kind = action.action
    if kind is ActionKind.noop:
        return "ok"
    if kind is ActionKind.error:
        raise InstallError(action.error or f"'{action.name}' could not be planned")
    if kind is ActionKind.warm:
        return WarmRunner(installer).run(action)
    if kind is ActionKind.view:
        return execute_view(installer, action)
    if kind is ActionKind.delete:
        assert action.key
        installer.delete(action.key)
        return "deleted"
    assert spec is not None, f"action {kind} needs an install spec"
    if kind is ActionKind.create:
        config = {**spec.config}
        key = (installer.register_path if spec.inplace else installer.install_path)(Path(spec.source_path or ""), config)
        action.key = key
        _verify_sha256(installer, action)
        return "created"
    if kind is ActionKind.adopt:
        if action.key:
            fields = {k: v for k, v in spec.config.items() if k not in ("type", "base", "format")}
            installer.update_fields(action.key, {**fields, "inplace": spec.inplace})
        elif spec.inplace:
            action.key = installer.adopt_path(Path(spec.source_path or ""), spec.config, inplace=True)
        else:
            config = dict(spec.config)
            if spec.source_path:
                config["source_fingerprint"] = local_fingerprint(Path(spec.source_path))
            action.key = installer.adopt_path(Path(spec.dest_path or ""), config, inplace=False)
        return "adopted"
    if kind is ActionKind.update:
        assert action.key
        if spec.changes:
            installer.update_fields(action.key, spec.changes)
        if spec.refresh_files:
            installer.refresh_files(action.key)
            installer.update_fields(action.key, {"manifest_digest": spec.config.get("manifest_digest")})
        return "updated"
    if kind is ActionKind.repair and spec.remote is not None:
        assert action.key
        source = parse_source(action.source or "")
        resolved = action._resolved or spec_to_resolved(spec.remote, source, installer.app_config)
        installer.repair_files(action.key, source, resolved)
        return "repaired"
    if kind in (ActionKind.replace, ActionKind.repair):
        assert action.key
        if spec.inplace:
            installer.reregister_inplace(action.key, Path(spec.source_path or ""), spec.config)
        else:
            installer.reinstall_path(action.key, Path(spec.source_path or ""), spec.config)
            _verify_sha256(installer, action)
        return "replaced" if kind is ActionKind.replace else "repaired"
    raise InstallError(f"action {kind} is not supported by this build")


def _verify_sha256(installer: ModelInstallService, action: PlannedAction) -> None:
    spec = action.install
    if not spec or not spec.sha256 or not action.key:
        return
    files = installer.record_store.get_files(action.key)
    got = next((f.sha256 for f in files if f.path == ""), None)
    if got != spec.sha256.lower():
        installer.delete(action.key)
        action.key = None
        raise InstallError(f"sha256 mismatch for '{action.name}': expected {spec.sha256}, got {got}; nothing installed")


def _is_remote_install(action: PlannedAction) -> bool:
    return (action.action in (ActionKind.create, ActionKind.replace) and action.install is not None
            and action.install.remote is not None)


def _start_remote(installer: ModelInstallService, action: PlannedAction) -> ModelInstallJob:
    spec = action.install
    assert spec is not None and spec.remote is not None
    source = parse_source(action.source or "")
    resolved = action._resolved or spec_to_resolved(spec.remote, source, installer.app_config)
    replace_key = action.key if action.action is ActionKind.replace else None
    return installer.import_model(source, spec.config, resolved=resolved, replace_key=replace_key)


def _failed(action: PlannedAction, exc: BaseException) -> None:
    """Record one action's failure as its result (the others go on)."""
    expected = isinstance(exc, (ReconcilerError, OSError))
    text = str(exc) if expected else f"unexpected {type(exc).__name__}: {exc} (-v shows the traceback)"
    action.result = "error: " + (" ".join(text.split()) or type(exc).__name__)
    log.log(logging.DEBUG if expected else logging.INFO, "action %s %s failed", action.action, action.name,
            exc_info=True)


def _run(installer: ModelInstallService, action: PlannedAction, on_action: Optional[ActionCallback]) -> None:
    if action.is_error:  # could not be planned: nothing is done for it, it fails
        action.result = f"error: {action.error}"
    elif not action.changes_anything:
        action.result = "ok"
        return
    else:
        try:
            action.result = execute_action(installer, action)
        except Exception as exc:  # noqa: BLE001 - one model's failure never stops the others
            _failed(action, exc)
    if on_action is not None:
        on_action(action)


def apply_plan(
    installer: ModelInstallService,
    plan: Plan,
    *,
    allow_empty: bool = False,
    max_deletions: int = 10,
    saved: bool = False,
    on_action: Optional[ActionCallback] = None,
    loader: Any = None,
) -> ApplyResult:
    """Execute ``plan``. The caller holds the models dir lock (see :func:`models_dir_lock`).

    ``loader`` (a ModelLoadService) runs the warm actions; without one, a warm action builds
    one for this apply (a long-running caller such as ``watch`` passes its own, so warmed
    models stay in its RAM cache).
    """
    if saved:
        check_not_stale(plan, installer)
    check_guards(plan, allow_empty=allow_empty, max_deletions=max_deletions)
    ordered = plan.ordered_actions()
    # remote downloads run in parallel as install jobs, while local actions run here
    jobs: list[tuple[PlannedAction, ModelInstallJob]] = []
    started: set[int] = set()
    for action in ordered:
        if not _is_remote_install(action):
            continue
        started.add(id(action))
        try:
            jobs.append((action, _start_remote(installer, action)))
        except Exception as exc:  # noqa: BLE001 - a download that cannot start fails alone
            _failed(action, exc)
            if on_action is not None:
                on_action(action)
    deletions = [a for a in ordered if a.action in (ActionKind.view, ActionKind.delete)]  # views first
    warm = [a for a in ordered if a.action is ActionKind.warm]
    for action in ordered:
        if id(action) in started or action.action in (ActionKind.delete, ActionKind.warm, ActionKind.view):
            continue
        _run(installer, action, on_action)
    for action, job in jobs:
        try:
            installer.wait_for_job(job)
        except Exception as exc:  # noqa: BLE001
            _failed(action, exc)
        else:
            if job.complete and job.config_out is not None:
                action.key = job.config_out.key
                action.result = "replaced" if action.action is ActionKind.replace else "created"
            else:
                action.result = "error: " + " ".join(str(job.error_message or job.status).split())
        if on_action is not None:
            on_action(action)
    runner = WarmRunner(installer, loader)  # after every install, before anything is deleted
    for action in warm:
        try:
            action.result = runner.run(action)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be loaded fails alone
            _failed(action, exc)
        if on_action is not None:
            on_action(action)
    for action in deletions:
        _run(installer, action, on_action)
    return ApplyResult(plan=plan)
