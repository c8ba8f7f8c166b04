"""Prune planning: which records a plan deletes, and which it must leave alone.

Prune only ever touches records whose ``managed_by`` names a set read in this run that no
longer declares them, and never a record that a model which cannot be planned may be.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.configs import ModelConfigBase
from reconciler.reconcile.manifest import Manifest
from reconciler.reconcile.plan import ActionKind, Plan, PlannedAction


def records_kept_for_errors(plan: Plan, records: Iterable[ModelConfigBase], claimed: set[str],
                     declared: set[tuple[str, str]], read_sets: set[str]) -> set[str]:
    """Keys of records that prune must leave alone because a model that cannot be planned
    may be them, moved to another set or renamed: same name or same source.  Deleting
    waits until that model plans again (its move or rename then shows as an update)."""
    errors = plan.errors
    if not errors:
        return set()
    names = {a.name: a for a in errors}
    sources = {a.source: a for a in errors if a.source}
    kept: set[str] = set()
    for rec in records:
        if rec.key in claimed or rec.managed_by not in read_sets or (rec.managed_by, rec.name) in declared:
            continue
        why = names.get(rec.name) or sources.get(rec.source)
        if why is None:
            continue
        kept.add(rec.key)
        plan.warnings.append(
            f"'{rec.name}' of set '{rec.managed_by}' is not pruned: declared model '{why.name}' "
            f"(set '{why.set}') cannot be planned and may be this model moved or renamed"
        )
    return kept

def plan_prune(
    manifest: Manifest,
    records: Iterable[ModelConfigBase],
    declared: set[tuple[str, str]],
    targets: set[str],
    plan: Plan,
    *,
    prune: bool,
    allow_empty: bool,
    max_deletions: int,
) -> None:
    """Add a ``delete`` action for each record that a set read in this run owns and no longer
    declares (only ``records`` are candidates), and the guards' warnings: a set that declares
    nothing needs ``--allow-empty``, more deletions than ``max_deletions`` need the flag."""
    sets = {s.metadata.name: s for s in manifest.sets}
    deletions: list[PlannedAction] = []
    owned_count: dict[str, int] = {}
    for rec in records:
        if rec.managed_by in sets:
            owned_count[rec.managed_by] = owned_count.get(rec.managed_by, 0) + 1
        if rec.managed_by not in sets or (rec.managed_by, rec.name) in declared:
            continue
        if targets and rec.name not in targets:
            continue
        if not prune or not sets[rec.managed_by].spec.prune:
            continue
        deletions.append(PlannedAction(
            action=ActionKind.delete, set=rec.managed_by, name=rec.name, source=rec.source, key=rec.key,
            reason=f"no longer declared by set '{rec.managed_by}'",
            notes=["record only: in-place files stay"] if rec.inplace else [],
        ))
    plan.actions.extend(deletions)
    for name, model_set in sets.items():
        if not model_set.spec.models and owned_count.get(name) and prune and model_set.spec.prune:
            if not allow_empty:
                plan.warnings.append(
                    f"set '{name}' declares no models: pruning its {owned_count[name]} installed models "
                    "needs --allow-empty (an emptied manifest is more often a mistake than an intent)"
                )
                if "--allow-empty" not in plan.deletions_blocked_by:
                    plan.deletions_blocked_by.append("--allow-empty")
    if len(deletions) > max_deletions:
        plan.warnings.append(
            f"the plan deletes {len(deletions)} models, more than --max-deletions {max_deletions}; "
            f"apply with --max-deletions {len(deletions)} if that is intended"
        )
        plan.deletions_blocked_by.append("--max-deletions")


__all__ = ["plan_prune", "records_kept_for_errors"]
