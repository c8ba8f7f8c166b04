"""Warm-up: `warm: true` models are loaded through the ModelLoadService by apply.

Planning: a declared entry with ``warm: true`` gets a ``warm`` action after its install,
or when its files changed since its last warm-up (the record's ``warm_hash`` is not its
``hash``), or when it was never warmed or its last warm-up failed.  Applying: once every
install of the plan is done, each warm action loads its model (every submodel of a
pipeline), moves it to the execution device as a caller would, and releases it; the
result (ok or failed, when, the load time, the loader's message) goes into the record,
where ``status`` shows it.  A failed warm-up fails that action only; the model stays
registered.

torch and diffusers are imported only when a warm action runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.install.paths import resolve_model_path
from reconciler.install.service import ModelInstallService
from reconciler.reconcile.manifest import Manifest
from reconciler.reconcile.plan import ActionKind, PlannedAction
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType, SubModelType

#: actions after which a model's files are new: it is warmed again
_NEW_FILES = {ActionKind.create: "installed by this apply", ActionKind.replace: "its files are replaced",
              ActionKind.repair: "its files are repaired", ActionKind.adopt: "adopted by this apply"}

#: the submodels of a main pipeline of each base, when no model_index.json says which
_PIPELINE_PARTS = {
    BaseModelType.StableDiffusionXL: ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae",
                                      "scheduler"),
    BaseModelType.StableDiffusionXLRefiner: ("text_encoder_2", "tokenizer_2", "unet", "vae", "scheduler"),
}
_SD_PARTS = ("text_encoder", "tokenizer", "unet", "vae", "scheduler")


def warm_reason(record: ModelConfigBase) -> Optional[str]:
    """Why an installed, unchanged model needs warming now (None: its last warm-up holds)."""
    if record.warm_state is None:
        return "never loaded"
    if record.warm_hash != record.hash:
        return "its files changed since the last warm-up"
    if record.warm_state == "failed":
        return f"the last warm-up failed: {record.warm_error}"
    return None


def plan_warm_actions(manifest: Manifest, actions: Iterable[PlannedAction],
                      records_by_owner: dict[tuple[str, str], ModelConfigBase],
                      targets: set[str]) -> list[PlannedAction]:
    """The ``warm`` actions for the entries that ask for warm-up and need it."""
    by_owner = {(a.set, a.name): a for a in actions}
    warm: list[PlannedAction] = []
    for model_set, entry in manifest.entries():
        if not entry.warm or (targets and entry.name not in targets):
            continue
        owner = (model_set.metadata.name, entry.name)
        action = by_owner.get(owner)
        if action is None or action.is_error:
            continue
        record = records_by_owner.get(owner)
        reason = _NEW_FILES.get(action.action)
        if reason is None and record is not None:
            reason = warm_reason(record)
        if reason is None:
            continue
        warm.append(PlannedAction(action=ActionKind.warm, set=owner[0], name=owner[1], source=action.source,
                                  reason=f"warm: true; {reason}", key=record.key if record is not None else None))
    return warm


def submodels(record: ModelConfigBase, models_dir: Path) -> list[Optional[SubModelType]]:
    """What a warm-up loads: each component of a main pipeline, else the model itself."""
    if record.type is not ModelType.Main:
        return [None]
    index = resolve_model_path(models_dir, record) / "model_index.json"
    if record.format is ModelFormat.Diffusers and index.is_file():
        known = {s.value for s in SubModelType}
        doc = json.loads(index.read_text(encoding="utf-8"))
        names = [k for k, v in doc.items() if k in known and isinstance(v, list) and v[0] is not None]
    else:
        names = list(_PIPELINE_PARTS.get(record.base, _SD_PARTS))
    return [SubModelType(n) for n in names]


class WarmRunner:
    """Runs warm actions against one ModelLoadService (built on first use)."""

    def __init__(self, installer: ModelInstallService, loader: Any = None) -> None:
        self.installer = installer
        self._loader = loader

    @property
    def loader(self) -> Any:
        if self._loader is None:
            from reconciler.load.service import ModelLoadService

            self._loader = ModelLoadService(app_config=self.installer.app_config,
                                            record_store=self.installer.record_store)
        return self._loader

    def run(self, action: PlannedAction) -> str:
        """Warm one model and record the result; raises (after recording it) on failure."""
        store = self.installer.record_store
        found = [r for r in store.search_by_attr(model_name=action.name) if r.managed_by == action.set]
        if not found:
            return "skipped: not installed (its install failed)"
        record = found[0]
        action.key = record.key
        started = time.perf_counter()
        try:
            for submodel in submodels(record, self.installer.models_dir):
                loaded = self.loader.load_model(record, submodel)
                with loaded:  # on the execution device, as an application would use it
                    pass
                loaded.release()
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            self._record(record, "failed", time.perf_counter() - started, message)
            raise
        seconds = time.perf_counter() - started
        self._record(record, "ok", seconds, None)
        return f"warmed in {seconds:.2f} s"

    def _record(self, record: ModelConfigBase, state: str, seconds: float, error: Optional[str]) -> None:
        self.installer.update_fields(record.key, {"warm_state": state, "warmed_at": time.time(),
                                                  "warm_load_time_s": round(seconds, 3),
                                                  "warm_hash": record.hash, "warm_error": error})


__all__ = ["WarmRunner", "plan_warm_actions", "submodels", "warm_reason"]
