"""Plan and apply ModelViews: the files each view needs in its app's folders.

The planner adds one row per declared view (``view`` when links change, ``noop`` when none,
``error`` when it cannot be planned: a file this tool did not make at a destination, or two
models that would take one name) and one ``view`` row per recorded view no manifest declares
any more (its links are removed, unless ``--no-prune``).  Apply runs view rows after every
install and before any deletion, so a model removed from the sets loses its links before its
files.  Only links recorded in the store are ever removed or replaced.
"""

from __future__ import annotations

import json
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
from reconciler.views import comfyconfig
from reconciler.views.apps import APP_FOLDERS, App, LinkMode, folder_for
from reconciler.views.hfcache import cache_repo
from reconciler.views.links import (
    WRITE,
    Want,
    link_state,
    model_links,
    place,
    remove,
    same_filesystem,
    stamp,
    write_text,
)

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


def _links_of(view_doc: dict[str, Any], models_dir: Path, record: ModelConfigBase, store: Any) -> tuple[list[Want], str]:
    path = resolve_model_path(models_dir, record)
    return model_links(App(view_doc["app"]), Path(view_doc["root"]), record.name, path, record.type, record.format,
                       hf=lambda: cache_repo(record, path, store.get_files(record.key)),
                       mode=LinkMode(view_doc["link"]))


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
            rows.append(_plan_view(view, doc, manifest, plan, records, mine, models_dir, prune, store))
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
               mine: dict[str, ViewLinkState], models_dir: Path, prune: bool, store: Any) -> PlannedAction:
    config = LinkMode(doc["link"]) is LinkMode.config
    mode, mode_note = (LinkMode.config, "") if config else _mode(doc, models_dir)
    notes = [mode_note] if mode_note else []
    in_view: list[ModelConfigBase] = []  # config: the installed models whose folders the section names
    sets = set(view.spec.sets) if view.spec.sets is not None else set(manifest.set_names)
    by_model = {(a.set, a.name): a for a in plan.actions if a.view is None}
    wanted: dict[str, tuple[Want, str]] = {}  # dest -> (what, model)
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
        if config:
            in_view.append(record)
            continue
        wants, note = _links_of(doc, models_dir, record, store)
        if note:
            notes.append(f"{entry.name}: {note}")
        for want in wants:
            other = wanted.get(str(want.dest))
            if other is not None:
                if want.shared and other[0].shared == want.shared:
                    continue  # one blob (or ref) of one repo, shared by both models
                raise InstallError(f"models '{other[1]}' and '{entry.name}' would both appear at {want.dest}")
            wanted[str(want.dest)] = (want, entry.name)
    if config:
        doc["models"] = [r.name for r in in_view] + pending
        content, config_notes = _config_content(models_dir, in_view)
        notes += config_notes
        path = comfyconfig.link_path(Path(doc["root"]), view.name)
        wanted[path] = (Want(Path(path), comfyconfig.content_text(content), comfyconfig.MODE), "")
    links: list[PlannedLink] = []
    conflicts: list[str] = []
    for dest, (want, model) in wanted.items():
        link = mine.get(dest)
        want_mode = want.mode or mode.value
        if link is not None:
            state = link_state(link)
            if state == "in_sync" and link.target == want.target and link.mode == want_mode and not (config and pending):
                continue
            reason = {"missing": "deleted by hand", "replaced": "replaced by hand"}.get(state, "the model's file changed")
            links.append(PlannedLink(op="relink", path=dest, model=model, target=want.target, mode=want_mode,
                                     reason=reason, pending=bool(config and pending)))
        elif comfyconfig.read_section(dest) is not None if config else _exists(Path(dest)):
            conflicts.append(dest)
        else:
            links.append(PlannedLink(op="link", path=dest, model=model, target=want.target, mode=want_mode,
                                     pending=bool(config and pending)))
    if conflicts and config:
        raise InstallError(f"a section this tool did not make is in {conflicts[0].replace('#', ' (section ')}); "
                           "it is never overwritten: rename it or remove it")
    if conflicts:
        raise InstallError("a file this tool did not make lies at " + ", ".join(conflicts)
                           + "; it is never overwritten: move it away or remove the model from the view")
    for name in [] if config else pending:
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


def _config_content(models_dir: Path, records: Sequence[ModelConfigBase]) -> tuple[dict[str, str], list[str]]:
    """The extra_model_paths.yaml section of a ``link: config`` view: ComfyUI's folder key of each
    model's kind -> the ``<base>/<type>`` folders under ``models_dir`` that hold those models."""
    folders: dict[str, set[str]] = {}
    notes: list[str] = []
    for record in records:
        path = resolve_model_path(models_dir, record)
        cell, note = folder_for(App.comfyui, record.type, record.format)
        if not isinstance(cell, str) or cell not in APP_FOLDERS[App.comfyui].values() or note:
            notes.append(f"{record.name}: {note or 'comfyui reads no such models'}")
            continue
        try:
            folder = path.parent.relative_to(models_dir).as_posix()
        except ValueError:
            folder = str(path.parent)  # an in-place model outside models_dir: an absolute line
        folders.setdefault(cell.removeprefix("models/"), set()).add(folder)
    return comfyconfig.section_content(models_dir, folders), notes


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

    made: dict[str, str] = {}  # dest -> its shared key, made by this apply

    def make(dest: Path, target: str, model: str, key: str, mode: str, shared: str = "") -> None:
        nonlocal done
        if str(dest) in made:
            if shared and made[str(dest)] == shared:
                return  # a blob or ref another model of this view just made
            errors.append(f"model '{model}' would appear at {dest}, where another model already does")
            return
        if mode != comfyconfig.MODE and str(dest) not in recorded and _exists(dest):
            errors.append(f"a file this tool did not make lies at {dest}; not overwritten")
            return
        if mode == comfyconfig.MODE:
            if str(dest) not in recorded and comfyconfig.read_section(str(dest)) is not None:
                errors.append(f"a section this tool did not make is in {dest}; not overwritten")
                return
            comfyconfig.write_section(str(dest), json.loads(target))
            used, text = mode, target
        elif mode == WRITE:
            write_text(target, dest)
            used, text = WRITE, target
        else:
            placed, text = place(Path(target), dest, LinkMode(mode))
            used = placed.value
        size, mtime = stamp(dest) if used == LinkMode.copy.value else (0, 0)
        add.append(ViewLinkState(view=action.name, path=str(dest), model=model, model_key=key, target=target,
                                 mode=used, link_text=text, size=size, mtime_ns=mtime))
        made[str(dest)] = shared
        done += 1

    for planned in action.links:
        if planned.op == "unlink" and planned.path in recorded:
            unlink(recorded[planned.path])
    by_name = {r.name: r for r in store.all_models() if r.managed_by is not None}
    for planned in action.links:
        if planned.op == "unlink":
            continue
        try:
            if planned.pending and planned.mode == comfyconfig.MODE:
                names = set(doc.get("models") or [])
                content, _notes = _config_content(models_dir, [r for n, r in by_name.items() if n in names])
                make(Path(planned.path), comfyconfig.content_text(content), "", "", comfyconfig.MODE)
            elif planned.pending:
                record = by_name.get(planned.model)
                if record is None:
                    errors.append(f"model '{planned.model}' is not installed; its links are not made")
                    continue
                mode, _note = _mode(doc, models_dir)
                wants, _note = _links_of(doc, models_dir, record, store)
                dests = {str(w.dest) for w in wants}
                for old in [x for x in recorded.values() if x.model == planned.model and x.path not in dests]:
                    unlink(old)
                for want in wants:
                    make(want.dest, want.target, record.name, record.key, want.mode or mode.value, want.shared)
            else:
                record = by_name.get(planned.model)
                make(Path(planned.path), planned.target, planned.model, record.key if record else "", planned.mode)
        except OSError as exc:
            errors.append(f"{planned.path}: {exc.strerror or exc}")
        except ValueError as exc:  # a config file that is not a YAML mapping
            errors.append(str(exc))
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
