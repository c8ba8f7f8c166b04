"""Plan and apply ModelViews: the files each view needs in its app's folders.

The planner adds one row per declared view (``view`` when links change, ``noop`` when none,
``error`` when it cannot be planned: a file this tool did not make at a destination, or two
models that would take one name) and one ``view`` row per recorded view no manifest declares
any more (its links are removed, unless ``--no-prune``).  Apply runs view rows after every
install and before any deletion, so a model removed from the sets loses its links before its
files.  Only links recorded in the store are ever removed or replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.configs import ModelConfigBase
from reconciler.errors import InstallError
from reconciler.install.paths import resolve_model_path
from reconciler.install.service import ModelInstallService
from reconciler.reconcile.manifest import Manifest
from reconciler.reconcile.plan import ActionKind, Plan, PlannedAction, PlannedLink
from reconciler.store.base import ViewLinkState
from reconciler.views.apps import App, LinkMode
from reconciler.views.links import link_state, model_links, place, remove, same_filesystem, stamp

#: model actions after which a model's links are computed at apply (its files change)
_PENDING = (ActionKind.create, ActionKind.replace, ActionKind.repair, ActionKind.adopt)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _view_doc(view: Any) -> dict[str, Any]:
    return {"name": view.name, "app": view.spec.app.value, "root": str(view.root_path()),
            "link": view.spec.link.value, "sets": list(view.spec.sets) if view.spec.sets is not None else None}


def _mode(view_doc: dict[str, Any], models_dir: Path) -> tuple[LinkMode, str]:
    mode = LinkMode(view_doc["link"])
    if mode is LinkMode.hardlink and not same_filesystem(models_dir, Path(view_doc["root"])):
        return LinkMode.copy, (f"{view_doc['root']} is on another filesystem than {models_dir}: "
                               "files are copied instead of hardlinked")
    return mode, ""


def _links_of(view_doc: dict[str, Any], models_dir: Path, record: ModelConfigBase) -> tuple[list[tuple[Path, Path]], str]:
    return model_links(App(view_doc["app"]), Path(view_doc["root"]), record.name,
                       resolve_model_path(models_dir, record), record.type, record.format)


def plan_views(installer: ModelInstallService, manifest: Manifest, plan: Plan, prune: bool = True,
               targets: Sequence[str] = ()) -> list[PlannedAction]:
    """The view rows of ``plan`` (computed after its model rows)."""
    if targets:
        if manifest.views:
            plan.warnings.append("--target: views are not planned (run without --target to update them)")
        return []
    store = installer.record_store
    models_dir = installer.models_dir
    recorded = store.view_links()
    records = {r.key: r for r in store.all_models()}
    rows = []
    for view in manifest.views:
        doc = _view_doc(view)
        mine = {link.path: link for link in recorded if link.view == view.name}
        try:
            rows.append(_plan_view(view, doc, manifest, plan, records, mine, models_dir, prune))
        except Exception as exc:  # noqa: BLE001 - one view that cannot be planned fails alone
            where = view.origin.location() + ": " if view.origin else ""
            rows.append(PlannedAction(action=ActionKind.error, set="view", name=view.name, source=None,
                                      reason="cannot be planned: nothing is done for this view",
                                      error=f"{where}ModelView '{view.name}': {exc}", view=doc))
    declared = {v.name for v in manifest.views}
    for name in sorted({link.view for link in recorded} - declared):
        links = [PlannedLink(op="unlink", path=link.path, model=link.model, mode=link.mode,
                             reason="the view is no longer declared") for link in recorded if link.view == name]
        rows.append(PlannedAction(
            action=ActionKind.view if prune else ActionKind.noop, set="view", name=name, source=None,
            reason="no longer declared: its links are removed" if prune else "no longer declared (--no-prune: kept)",
            view={"name": name, "app": "", "root": "", "link": "", "sets": None},
            links=links if prune else [],
        ))
    return rows


def _plan_view(view: Any, doc: dict[str, Any], manifest: Manifest, plan: Plan, records: dict[str, ModelConfigBase],
               mine: dict[str, ViewLinkState], models_dir: Path, prune: bool) -> PlannedAction:
    if LinkMode(doc["link"]) is LinkMode.config:
        raise InstallError("link: config is not supported by this build yet")
    mode, mode_note = _mode(doc, models_dir)
    notes = [mode_note] if mode_note else []
    sets = set(view.spec.sets) if view.spec.sets is not None else set(manifest.set_names)
    by_model = {(a.set, a.name): a for a in plan.actions if a.view is None}
    wanted: dict[str, tuple[Path, str]] = {}  # dest -> (target, model)
    pending: list[str] = []
    for model_set, entry in manifest.entries():
        if model_set.name not in sets:
            continue
        action = by_model.get((model_set.name, entry.name))
        if action is None:
            continue
        if action.action in _PENDING or (action.action is ActionKind.update and action.key is None):
            pending.append(entry.name)
            continue
        record = records.get(action.key or "")
        if record is None:
            continue  # an error row without an installed model: nothing to show
        pairs, note = _links_of(doc, models_dir, record)
        if note:
            notes.append(f"{entry.name}: {note}")
        for dest, target in pairs:
            other = wanted.get(str(dest))
            if other is not None:
                raise InstallError(f"models '{other[1]}' and '{entry.name}' would both appear at {dest}")
            wanted[str(dest)] = (target, entry.name)
    links: list[PlannedLink] = []
    conflicts: list[str] = []
    for dest, (target, model) in wanted.items():
        link = mine.get(dest)
        if link is not None:
            state = link_state(link)
            if state == "in_sync" and link.target == str(target) and link.mode == mode.value:
                continue
            reason = {"missing": "deleted by hand", "replaced": "replaced by hand"}.get(state, "the model's file changed")
            links.append(PlannedLink(op="relink", path=dest, model=model, target=str(target), mode=mode.value,
                                     reason=reason))
        elif _exists(Path(dest)):
            conflicts.append(dest)
        else:
            links.append(PlannedLink(op="link", path=dest, model=model, target=str(target), mode=mode.value))
    if conflicts:
        raise InstallError("a file this tool did not make lies at " + ", ".join(conflicts)
                           + "; it is never overwritten: move it away or remove the model from the view")
    for name in pending:
        links.append(PlannedLink(op="link", path=doc["root"], model=name, mode=mode.value, pending=True,
                                 reason="after its install (paths known after apply)"))
    pending_set = set(pending)
    for dest, link in mine.items():
        if dest not in wanted and link.model not in pending_set and prune:
            links.append(PlannedLink(op="unlink", path=dest, model=link.model, mode=link.mode,
                                     reason="the model left the view"))
    kind = ActionKind.view if links else ActionKind.noop
    counts = {op: sum(1 for x in links if x.op == op) for op in ("link", "relink", "unlink")}
    reason = ", ".join(f"{n} to {op}" for op, n in counts.items() if n) or "in sync"
    return PlannedAction(action=kind, set="view", name=view.name, source=None, reason=reason, notes=notes,
                         view=doc, links=links)


# --- apply ----------------------------------------------------------------------------------

def execute_view(installer: ModelInstallService, action: PlannedAction) -> str:
    """Carry out a view row: unlinks first, then links (pending models expanded now).

    Every link made or removed is recorded in one store write, also when some failed; the
    failures are then raised as one InstallError.
    """
    store = installer.record_store
    models_dir = installer.models_dir
    doc = action.view or {}
    root = Path(doc.get("root") or "/")
    app = App(doc["app"]) if doc.get("app") else None
    recorded = {link.path: link for link in store.view_links() if link.view == action.name}
    add: list[ViewLinkState] = []
    gone: list[tuple[str, str]] = []
    errors: list[str] = []
    kept: list[str] = []
    done = 0

    def unlink(link: ViewLinkState) -> None:
        nonlocal done
        if not remove(link, root if app else Path(link.path).parent, app):
            kept.append(link.path)
        gone.append((link.view, link.path))
        done += 1

    def make(dest: Path, target: Path, model: str, key: str, mode: LinkMode) -> None:
        nonlocal done
        if str(dest) not in recorded and _exists(dest):
            errors.append(f"a file this tool did not make lies at {dest}; not overwritten")
            return
        used, text = place(target, dest, mode)
        size, mtime = stamp(dest) if used is LinkMode.copy else (0, 0)
        add.append(ViewLinkState(view=action.name, path=str(dest), model=model, model_key=key, target=str(target),
                                 mode=used.value, link_text=text, size=size, mtime_ns=mtime))
        done += 1

    for planned in action.links:
        if planned.op == "unlink" and planned.path in recorded:
            unlink(recorded[planned.path])
    by_name = {r.name: r for r in store.all_models() if r.managed_by is not None}
    for planned in action.links:
        if planned.op == "unlink":
            continue
        try:
            if planned.pending:
                record = by_name.get(planned.model)
                if record is None:
                    errors.append(f"model '{planned.model}' is not installed; its links are not made")
                    continue
                mode, _note = _mode(doc, models_dir)
                pairs, _note = _links_of(doc, models_dir, record)
                dests = {str(d) for d, _t in pairs}
                for old in [x for x in recorded.values() if x.model == planned.model and x.path not in dests]:
                    unlink(old)
                for dest, target in pairs:
                    make(dest, target, record.name, record.key, mode)
            else:
                record = by_name.get(planned.model)
                make(Path(planned.path), Path(planned.target), planned.model, record.key if record else "",
                     LinkMode(planned.mode))
        except OSError as exc:
            errors.append(f"{planned.path}: {exc.strerror or exc}")
    if add or gone:
        store.update_view_links(add=add, remove=gone)
    if errors:
        raise InstallError(f"view '{action.name}': " + "; ".join(errors))
    return f"{done} links" + (f"; kept (replaced by hand, now the user's): {', '.join(kept)}" if kept else "")


def view_status(installer_store: Any) -> list[dict[str, Any]]:
    """Every recorded view link with its live state (``in_sync``, ``missing``, ``replaced``)."""
    try:
        links = installer_store.view_links()
    except NotImplementedError:  # a store without view links (a caller's own backend)
        return []
    return [{**link.model_dump(include={"view", "path", "model", "target", "mode"}), "state": link_state(link)}
            for link in links]


__all__ = ["execute_view", "plan_views", "view_status"]
