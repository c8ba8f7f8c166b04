"""The watch status file: what the last reconcile found, as one JSON document.

``reconciler watch --status-file PATH`` rewrites PATH after each reconcile and at no other
time.  The write is atomic: the document goes to a temporary file in the same directory
(``.<name>.<random>.tmp``), is fsynced, and replaces PATH with ``os.replace``; a reader
sees the old document or the new one, never a part of one.  :meth:`StatusFile.owns`
tells the watch loop which paths are these writes, so they never trigger a reconcile.

The document (``format_version`` 1; times are ISO 8601 UTC, ``2025-01-31T12:00:00Z``)::

    {"format_version": 1,
     "kind": "ReconcilerWatchStatus",
     "observedGeneration": 3,            # reconciles written so far (kept across restarts)
     "revision": "9f1c...",              # the manifests' git commit, or null
     "trigger": "manifest",              # what started the last reconcile
     "result": "success",                # success | failed | stalled
     "message": "2 created; 5 unchanged",
     "lastAttemptTime": "...Z",          # when the last reconcile started
     "lastAttemptDuration": 1.234,       # its seconds
     "lastSuccessTime": "...Z",          # the last reconcile that succeeded, or null
     "ready": true,
     "conditions": [                     # Flux / kstatus vocabulary, always these three
       {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
        "message": "...", "lastTransitionTime": "...Z"},
       {"type": "Reconciling", "status": "False", ...},
       {"type": "Stalled", "status": "False", ...}],
     "counts": {"in_sync": 5, "drifted": 0, "missing": 0, "unmanaged": 1},
     "actions": [{"action": "create", "set": "studio", "name": "base15", "result": "ok"}]}

Conditions, by the report's ``result`` and ``ready`` (status and reason of each)::

    result               Ready                          Reconciling                  Stalled
    success, ready       True  ReconciliationSucceeded  False ReconciliationSucceeded  False ReconciliationSucceeded
    success, not ready   False ModelsNotReady           True  Progressing              False Progressing
    failed (retried)     False ReconciliationFailed     True  ProgressingWithRetry     False ProgressingWithRetry
    stalled (needs edit) False ReconciliationStalled    False ReconciliationStalled    True  ReconciliationStalled

Every condition's ``message`` is the report's message.
A condition's ``lastTransitionTime`` changes only when its ``status`` does (kstatus).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Protocol

FORMAT_VERSION = 1
KIND = "ReconcilerWatchStatus"
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled")


class ReportLike(Protocol):
    """What this module reads of a ``reconciler.reconcile.watch.ReconcileReport``."""

    trigger: str
    started: float
    finished: float
    result: str
    message: str
    actions: list[dict[str, Any]]
    counts: dict[str, int]
    revision: Optional[str]
    last_success: Optional[float]
    ready: bool


def isotime(epoch: Optional[float]) -> Optional[str]:
    """Epoch seconds as ISO 8601 UTC (``2025-01-31T12:00:00Z``); None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _states(report: ReportLike) -> dict[str, tuple[str, str]]:
    """Condition type -> (status, reason) for a report."""
    if report.result == "stalled":
        return {"Ready": ("False", "ReconciliationStalled"), "Reconciling": ("False", "ReconciliationStalled"),
                "Stalled": ("True", "ReconciliationStalled")}
    if report.result == "failed":
        return {"Ready": ("False", "ReconciliationFailed"), "Reconciling": ("True", "ProgressingWithRetry"),
                "Stalled": ("False", "ProgressingWithRetry")}
    if not report.ready:
        return {"Ready": ("False", "ModelsNotReady"), "Reconciling": ("True", "Progressing"),
                "Stalled": ("False", "Progressing")}
    return {"Ready": ("True", "ReconciliationSucceeded"), "Reconciling": ("False", "ReconciliationSucceeded"),
            "Stalled": ("False", "ReconciliationSucceeded")}


def conditions(report: ReportLike, previous: Optional[list[dict[str, Any]]] = None) -> list[dict[str, Any]]:
    """The ``Ready``, ``Reconciling`` and ``Stalled`` conditions of a report, in that order.

    ``previous`` (the conditions written last time) keeps a condition's
    ``lastTransitionTime`` when its status has not changed; otherwise it is the time the
    reconcile finished.
    """
    before = {c.get("type"): c for c in previous or () if isinstance(c, dict)}
    now = isotime(report.finished)
    message = report.message or report.result
    out = []
    for kind, (status, reason) in _states(report).items():
        old = before.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == status and \
            old.get("lastTransitionTime") else now
        out.append({"type": kind, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": since})
    return out


def ready_reason(report: Optional[ReportLike]) -> str:
    """Why a watcher is not ready, in one line (``Reason: message``)."""
    if report is None:
        return "NoReconcileYet: the first reconcile has not finished"
    ready = conditions(report)[0]
    return f"{ready['reason']}: {ready['message']}"


def document(report: ReportLike, generation: int = 1,
             previous: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """The status document of a report (see the module docstring for its shape)."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "observedGeneration": generation,
        "revision": report.revision,
        "trigger": report.trigger,
        "result": report.result,
        "message": report.message,
        "lastAttemptTime": isotime(report.started),
        "lastAttemptDuration": round(max(0.0, report.finished - report.started), 3),
        "lastSuccessTime": isotime(report.last_success),
        "ready": bool(report.ready),
        "conditions": conditions(report, previous),
        "counts": dict(report.counts),
        "actions": [dict(a) for a in report.actions],
    }


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: a temp file in its directory, fsync, ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # the rename itself survives a power loss once the directory is synced
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class StatusFile:
    """The ``--status-file``: :meth:`write` rewrites it atomically from a report.

    The generation counter and the conditions' transition times carry on from the
    document already at ``path`` (a restarted watcher continues its count).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.generation = 0
        self._conditions: Optional[list[dict[str, Any]]] = None
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(old, dict) and old.get("kind") == KIND:
            if isinstance(old.get("observedGeneration"), int):
                self.generation = old["observedGeneration"]
            if isinstance(old.get("conditions"), list):
                self._conditions = old["conditions"]

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """True for the status file and its temporary files: the watcher's own writes."""
        p = Path(path).absolute()
        if p.parent != self.path.parent:
            return False
        return p.name == self.path.name or (p.name.startswith(f".{self.path.name}.") and p.name.endswith(".tmp"))

    def write(self, report: ReportLike) -> None:
        """Write the document of ``report``, replacing the file in one rename."""
        doc = document(report, self.generation + 1, self._conditions)
        data = (json.dumps(doc, indent=2, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, data)
        self.generation += 1
        self._conditions = doc["conditions"]
