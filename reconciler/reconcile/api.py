"""The reconciler as a library: `plan()` and `apply()`, what the CLI calls too."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from reconciler.reconcile.apply import (
    ActionCallback,
    ApplyResult,
    apply_plan,
    ensure_writable,
    models_dir_lock,
)
from reconciler.reconcile.manifest import Manifest, load_manifests
from reconciler.reconcile.plan import Plan
from reconciler.reconcile.planner import Planner, PlanOptions
from reconciler.reconcile.services import open_services
from reconciler.settings import AppSettings, load_settings


def manifest_paths(paths: Sequence[Path | str], settings: AppSettings) -> list[Path]:
    """The manifest paths given, or the settings' default (``./manifests``)."""
    return [Path(p) for p in paths] if paths else list(settings.manifests)


def plan(
    paths: Sequence[Path | str] = (),
    settings: Optional[AppSettings] = None,
    options: Optional[PlanOptions] = None,
    manifest: Optional[Manifest] = None,
) -> Plan:
    """Compute the plan for the manifests at ``paths``; changes nothing on disk."""
    settings = settings or load_settings()
    manifest = manifest or load_manifests(manifest_paths(paths, settings))
    with open_services(settings, create=False) as services:
        result = Planner(services.installer).plan(manifest, options or PlanOptions(max_deletions=settings.max_deletions))
        if not services.store_exists:
            result.store_lineage, result.store_serial = "", 0
        return result


def apply(
    paths: Sequence[Path | str] = (),
    settings: Optional[AppSettings] = None,
    options: Optional[PlanOptions] = None,
    saved_plan: Optional[Plan] = None,
    on_action: Optional[ActionCallback] = None,
) -> ApplyResult:
    """Plan (or take ``saved_plan``) and execute it under the models dir's lock."""
    settings = settings or load_settings()
    options = options or PlanOptions(max_deletions=settings.max_deletions)
    manifest = None if saved_plan is not None else load_manifests(manifest_paths(paths, settings))
    ensure_writable(settings.models_dir)
    with models_dir_lock(settings.apply_lock_path, settings.apply_lock_timeout):
        with open_services(settings, create=True) as services:
            services.installer.start()
            if saved_plan is not None:
                the_plan = saved_plan
                if the_plan.store_lineage == "":  # planned before the store existed
                    if services.store.serial == 0:
                        the_plan.store_lineage = services.store.lineage
            else:
                assert manifest is not None
                the_plan = Planner(services.installer).plan(manifest, options)
                the_plan.store_lineage, the_plan.store_serial = services.store.lineage, services.store.serial
            return apply_plan(
                services.installer,
                the_plan,
                allow_empty=options.allow_empty,
                max_deletions=options.max_deletions,
                saved=saved_plan is not None,
                on_action=on_action,
            )
