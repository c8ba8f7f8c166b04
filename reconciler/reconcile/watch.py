"""`reconciler watch`: the long-running form of apply.

One worker thread runs reconciles, never two at once; file events (watchdog, on folders:
see :mod:`reconciler.reconcile.watch_events`), the interval timer (±5% jitter), SIGHUP and
the retry timer only feed its trigger queue.  Events pass a trailing debounce (default
0.5 s, capped at 10 s of continuous events); what arrives during a reconcile schedules
exactly one more.  Models-dir events are not trusted during a reconcile (the apply's own
copies) or just after it: instead the models dir is observed after each reconcile, and a
model that drifted although the plan left it alone gets one more reconcile.

Desired state: the manifests as read now; when they fail validation, the last good desired
state stays (result ``stalled``: nothing new is pruned, drift is still repaired); the sets
of a manifest file that was deleted stay too, unless ``--allow-prune-on-delete``.  A failed
reconcile (hub down) is retried after 1 s, doubling up to 5 min, reset on success.

SIGTERM/SIGINT: stop taking events, pause in-flight downloads (their partial files stay in
``.reconciler/tmp`` to resume), and exit 0; a reconcile that has not ended within
:data:`SHUTDOWN_GRACE` s is abandoned with ``os._exit(0)`` (the kernel drops the apply lock;
every install step is crash-safe).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from reconciler.errors import ApplyGuardError, ManifestError, ReconcilerError
from reconciler.reconcile import systemd
from reconciler.reconcile.manifest import Manifest, ModelSet
from reconciler.reconcile.watch_events import (
    Debouncer,
    EventFilter,
    WatchSpec,
    manifests_revision,
    watch_targets,
)
from reconciler.reconcile.watch_observer import DirectoryObserver
from reconciler.reconcile.watch_status import StatusFile
from reconciler.settings import AppSettings

log = logging.getLogger(__name__)

TICK = 1.0              #: the worker wakes at least this often (alive())
BACKOFF_START, BACKOFF_CAP = 1.0, 300.0
SHUTDOWN_GRACE = 5.0    #: seconds a reconcile gets to end after SIGTERM
DEBOUNCE_CAP = 10.0


@dataclass
class ReconcileReport:
    """What one reconcile did (the status file and metrics read it)."""

    trigger: str
    started: float
    finished: float = 0.0
    result: str = "success"          # success | failed | stalled
    message: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    revision: Optional[str] = None
    last_success: Optional[float] = None
    ready: bool = False

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)


@dataclass
class WatchOptions:
    paths: Sequence[Path] = ()
    interval: float = 600.0
    debounce: float = 0.5
    status_file: Optional[Path] = None
    listen: Optional[tuple[str, int]] = None
    allow_prune_on_delete: bool = False
    poll: bool = False
    prune: bool = True
    targets: Sequence[str] = ()
    max_deletions: Optional[int] = None
    locked: bool = False


class _LazyLoader:
    """The watcher's one ModelLoadService, built on the first warm action (torch stays
    unimported until then); warmed models stay in its RAM cache for the watcher's life."""

    def __init__(self, settings: AppSettings) -> None:
        self._settings, self._service = settings, None

    def __getattr__(self, name: str) -> Any:
        if self._service is None:
            from reconciler.load.service import ModelLoadService

            self._service = ModelLoadService(app_config=self._settings)
        return getattr(self._service, name)


class Watcher:
    """See the module docstring.  ``run()`` blocks until SIGTERM/SIGINT (or :meth:`stop`)."""

    def __init__(self, settings: AppSettings, options: WatchOptions) -> None:
        from reconciler.reconcile.api import manifest_paths

        self.settings, self.options = settings, options
        self.paths = manifest_paths(options.paths, settings)
        self.metrics: Any = None      #: set by the observability half (WatchMetrics)
        self.last_report: Optional[ReconcileReport] = None
        self.reconciles = 0
        self._cond = threading.Condition()
        self._debouncer = Debouncer(options.debounce, DEBOUNCE_CAP)
        self._immediate: list[str] = []
        self._retry_at: Optional[float] = None
        self._backoff = BACKOFF_START
        self._interval_at: Optional[float] = None
        self._reconciling = False
        self._quiet_until = 0.0       #: models-dir events before this are the apply's own
        self._suppressed = 0
        self._tick = time.monotonic()
        self._stop = threading.Event()
        self._stop_requested = threading.Event()
        self._last_good: Optional[Manifest] = None
        self._last_success: Optional[float] = None
        self._ready_sent = False
        self._loader = _LazyLoader(settings)
        self._queue: Any = None
        self.directories = DirectoryObserver(self.on_event, polling=options.poll)
        self._worker: Optional[threading.Thread] = None
        self._filter = EventFilter(self.paths, settings.lock, settings.models_dir, settings.state_dir,
                                   settings.db_path, settings.autoimport_dir, options.status_file)
        self._status_writer: Any = None
        self._health: Any = None

    # --- what the observability half reads -------------------------------------------------------
    def alive(self) -> bool:
        """The loop ticked recently (a reconcile in progress counts as alive)."""
        worker_ok = self._worker is not None and self._worker.is_alive()
        return worker_ok and (self._reconciling or time.monotonic() - self._tick < 10 * TICK + 20)

    def pending_triggers(self) -> int:
        with self._cond:
            return len(self._immediate) + len(self._debouncer)

    # --- triggers -------------------------------------------------------------------------------
    def trigger(self, reason: str) -> None:
        """Reconcile now (after the one running, if any)."""
        with self._cond:
            if reason not in self._immediate:
                self._immediate.append(reason)
            self._cond.notify_all()

    def on_event(self, event: Any) -> None:
        """A watchdog event (observer thread)."""
        if self._stop.is_set():
            return
        kind = self._filter.classify(event)
        if kind is None:
            return
        if kind == "models" and (self._reconciling or time.monotonic() < self._quiet_until):
            self._suppressed += 1
            return
        log.debug("event %s %s -> %s", event.event_type, event.src_path, kind)
        with self._cond:
            self._debouncer.add(kind)
            self._cond.notify_all()

    def _take_due(self, now: float) -> tuple[Optional[str], float]:
        """The trigger due now (reasons joined with '+'), else None and when the next is due."""
        reasons = list(self._immediate)
        due = self._debouncer.due
        if due is not None and due <= now:
            reasons += sorted(self._debouncer.take())
        if self._retry_at is not None and self._retry_at <= now:
            reasons.append("retry")
            self._retry_at = None
        if self._interval_at is not None and self._interval_at <= now:
            reasons.append("interval")
        if reasons:
            self._immediate.clear()
            return "+".join(dict.fromkeys(reasons)), now
        nxt = min(t for t in (self._debouncer.due, self._retry_at, self._interval_at, now + TICK) if t is not None)
        return None, nxt

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                now = self._tick = time.monotonic()
                reason, nxt = self._take_due(now)
                if reason is None:
                    self._cond.wait(max(0.0, min(nxt - now, TICK)))
                    continue
            try:
                self.reconcile_once(reason)
            except Exception:  # noqa: BLE001 - the loop never dies of one reconcile
                log.exception("reconcile crashed; retrying")
                self._schedule_retry()

    def _schedule_retry(self) -> None:
        with self._cond:
            self._retry_at = time.monotonic() + self._backoff
            log.info("retrying in %.0f s", self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_CAP)

    # --- one reconcile ----------------------------------------------------------------------------
    def _desired(self) -> tuple[Optional[Manifest], Optional[str], bool]:
        """(manifest to apply, stalled message, allow_empty for deleted files' sets)."""
        from reconciler.reconcile.api import read_manifests

        try:
            current = read_manifests(self.paths, self.settings)
        except (ManifestError, OSError) as exc:
            return self._last_good, f"manifests invalid, keeping the last good desired state: {exc}", False
        with_sets = {os.path.abspath(s.origin.file) for s in current.sets if s.origin is not None}
        empty = [f for f in current.files if os.path.abspath(f) not in with_sets]
        if empty:  # a truncated save reads as no documents: never a reason to drop a set
            return self._last_good, (f"manifests invalid, keeping the last good desired state: {empty[0]}: "
                                     "declares no ModelSet (empty or half-saved?)"), False
        if self._last_good is None:
            return current, None, False
        names = set(current.set_names)
        models = set(current.by_name())
        emptied = False
        for old in self._last_good.sets:
            origin = old.origin.file if old.origin is not None else None
            if origin is None or os.path.exists(origin) or old.name in names:
                continue
            if self.options.allow_prune_on_delete:
                log.warning("manifest %s was deleted: pruning its set '%s' (--allow-prune-on-delete)",
                            origin, old.name)
                current.sets.append(ModelSet(apiVersion="reconciler/v1", kind="ModelSet",
                                             metadata={"name": old.name}, spec={"models": []}))
                emptied = True
            elif models.isdisjoint(e.name for e in old.spec.models):
                log.warning("manifest %s was deleted: keeping set '%s' as it was (pass "
                            "--allow-prune-on-delete to prune it)", origin, old.name)
                current.sets.append(old)
        return current, None, emptied

    def reconcile_once(self, trigger: str) -> ReconcileReport:
        """Reconcile now (the worker thread's job; tests may call it directly)."""
        from reconciler.reconcile import api
        from reconciler.reconcile.planner import PlanOptions

        self.reconciles += 1
        number = self.reconciles
        report = ReconcileReport(trigger=trigger, started=time.time(), last_success=self._last_success)
        log.debug("reconcile #%d starting trigger=%s t=%.6f", number, trigger, report.started)
        self._reconciling = True
        self._suppressed = 0
        downloaded: dict[Any, int] = {}
        plan: Any = None
        self._refresh_watches()  # before reading: a change from here on is seen
        try:
            report.revision = manifests_revision(self.paths)
            manifest, stalled, allow_empty = self._desired()
            if manifest is not None:
                opts = self.options
                max_del = self.settings.max_deletions if opts.max_deletions is None else opts.max_deletions
                options = PlanOptions(prune=opts.prune, targets=tuple(opts.targets), allow_empty=allow_empty,
                                      max_deletions=max_del)

                def count(event: Any) -> None:
                    if event.name == "model_install_downloading":
                        downloaded[event.payload.get("id")] = int(event.payload.get("bytes") or 0)

                result = api.apply(settings=self.settings, options=options, manifest=manifest,
                                   locked=opts.locked and stalled is None, event_handlers=[count],
                                   loader=self._loader, download_queue=self._ensure_queue())
                plan = result.plan
                report.actions = [{"action": a.action.value, "set": a.set, "name": a.name, "result": a.result}
                                  for a in plan.actions if a.action.value != "noop"]
                if result.failed:
                    report.result = "failed"
                    report.message = "; ".join(f"{a.action.value} {a.set}/{a.name}: {a.result}"
                                               for a in result.failed[:5])
            report.actions += self._autoimport()
            if stalled:
                report.result, report.message = "stalled", stalled
            elif report.result == "success" and manifest is not None:
                self._last_good = manifest
        except ApplyGuardError as exc:
            report.result, report.message = "stalled", str(exc)
        except (ReconcilerError, OSError) as exc:
            report.result, report.message = "failed", " ".join(str(exc).split())
        except Exception as exc:  # noqa: BLE001 - reported, retried; the watcher lives on
            log.debug("reconcile failed", exc_info=True)
            report.result, report.message = "failed", f"unexpected {type(exc).__name__}: {exc}"
        finally:
            self._reconciling = False
            self._quiet_until = time.monotonic() + (2.0 if self.directories.polling else 0.3)
        self._observe(report, plan)
        report.finished = time.time()
        self._finish(report, number, sum(downloaded.values()))
        return report

    def _autoimport(self) -> list[dict[str, Any]]:
        """Register (in place) the models dropped into the autoimport dir, as sync_to_config does."""
        folder = self.settings.autoimport_dir
        if folder is None or not folder.is_dir():
            return []
        from reconciler.install.scan import scan
        from reconciler.reconcile.apply import models_dir_lock
        from reconciler.reconcile.services import open_services

        with models_dir_lock(self.settings.apply_lock_path, self.settings.apply_lock_timeout):
            with open_services(self.settings, create=True) as services:
                found = scan(services.installer, folder)
                names = {k: services.store.get_model(k).name for k in found.added}
        return [{"action": "register", "set": None, "name": names[k], "result": "registered"} for k in found.added]

    def _observe(self, report: ReconcileReport, plan: Any) -> None:
        """Counts by state, readiness, and drift that happened during the reconcile."""
        from reconciler.reconcile.observe import ModelState, observe_all
        from reconciler.reconcile.services import open_services

        try:
            with open_services(self.settings, create=False) as services:
                observed = observe_all(services.store, self.settings.models_dir)
        except (ReconcilerError, OSError) as exc:
            log.warning("cannot observe the models dir: %s", exc)
            return
        report.counts = dict(Tally(o.state.value for o in observed))
        by_owner = {(o.record.managed_by, o.record.name): o for o in observed}
        declared = [(s.name, e) for s, e in self._last_good.entries()] if self._last_good else []
        report.ready = report.result == "success" and all(
            (o := by_owner.get((set_name, e.name))) is not None and o.state is ModelState.in_sync
            and (not e.warm or o.record.warm_state == "ok") for set_name, e in declared)
        if plan is not None:
            untouched = {(a.set, a.name) for a in plan.actions if a.action.value == "noop"}
            drifted = [k for k, o in by_owner.items() if k in untouched and o.state in
                       (ModelState.drifted, ModelState.missing)]
            if drifted:
                log.info("models changed during the reconcile (%s): reconciling again",
                         ", ".join(f"{s}/{n}" for s, n in drifted[:5]))
                self.trigger("drift")

    def _watch_targets(self) -> list[WatchSpec]:
        """The folders to watch for the paths as they resolve now."""
        return watch_targets(self.paths, self.settings.lock, self.settings.models_dir, self.settings.autoimport_dir)

    def _refresh_watches(self) -> None:
        self._filter.refresh()
        self.directories.reschedule(self._watch_targets())

    def _finish(self, report: ReconcileReport, number: int, downloaded: int) -> None:
        self._refresh_watches()  # the apply may have made the models dir
        if report.result == "success":
            self._last_success = report.last_success = report.finished
            with self._cond:
                self._backoff, self._retry_at = BACKOFF_START, None
        elif report.result == "failed":
            self._schedule_retry()
        with self._cond:
            jitter = random.uniform(0.95, 1.05)
            self._interval_at = time.monotonic() + self.options.interval * jitter
        # the status file and the metrics first: whoever sees the report (/readyz, the log
        # line) finds them already saying the same
        if self._status_writer is not None:
            try:
                self._status_writer.write(report)
            except OSError as exc:
                log.warning("cannot write the status file: %s", exc)
        if self.metrics is not None:
            self.metrics.observe(report, downloaded)
        self.last_report = report
        kinds = Tally(a["action"] for a in report.actions)
        summary = ",".join(f"{k}:{v}" for k, v in sorted(kinds.items())) or "none"
        level = logging.INFO if report.result == "success" else logging.WARNING
        log.log(level, "reconcile #%d trigger=%s result=%s duration=%.2fs actions=%s revision=%s%s", number,
                report.trigger, report.result, report.duration, summary, report.revision or "-",
                f" message={report.message}" if report.message else "")
        if report.result == "success" and not self._ready_sent:
            self._ready_sent = True
            systemd.notify("READY=1")

    def _ensure_queue(self) -> Any:
        if self._queue is None:
            from reconciler.download import DownloadQueueService

            s = self.settings
            self._queue = DownloadQueueService(
                max_parallel_dl=s.max_parallel_dl, connections_per_file=s.connections_per_file,
                min_segment_size=s.min_segment_size, limit_rate=s.limit_rate, download_retries=s.download_retries,
                download_timeout=s.download_timeout, direct_io=s.direct_io)
        return self._queue

    # --- running -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the observer, the worker (which reconciles at once) and the optional extras."""
        if self.options.status_file is not None:
            self._status_writer = StatusFile(self.options.status_file)
        if self.options.listen is not None:
            from reconciler.reconcile.watch_http import HealthServer  # prometheus_client: only with --listen

            self._health = HealthServer(self.options.listen[0], self.options.listen[1], self)
            self._health.start()
        self.directories.start(self._watch_targets())
        self.trigger("start")
        self._worker = threading.Thread(target=self._loop, name="watch-reconcile", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> int:
        """Reconcile until SIGTERM/SIGINT; returns the exit status (0)."""
        def on_stop(signum: int, _frame: Any) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._stop_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.trigger("sighup"))
        self.start()
        ping = systemd.watchdog_interval()
        while not self._stop_requested.wait(ping or 3600):
            if ping and self.alive():
                systemd.notify("WATCHDOG=1")
        return self.shutdown()

    def shutdown(self) -> int:
        """Stop events, pause downloads, wait briefly for the reconcile, then exit 0."""
        self._stop.set()
        systemd.notify("STOPPING=1")
        with self._cond:
            self._cond.notify_all()
        self.directories.stop()
        if self._reconciling and self._queue is not None:
            log.info("pausing downloads; partial files stay in %s to resume", self.settings.tmp_dir)
            self._queue.pause_all_jobs()
        if self._worker is not None:
            self._worker.join(SHUTDOWN_GRACE)
        if self._health is not None:
            self._health.stop()
        if self._worker is not None and self._worker.is_alive():
            log.warning("exiting with reconcile #%d unfinished; the next run resumes it", self.reconciles)
            logging.shutdown()
            os._exit(0)
        log.info("stopped")
        return 0


__all__ = ["ReconcileReport", "WatchOptions", "Watcher"]
