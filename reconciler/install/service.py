"""ModelInstallService: the one path through which models are installed, registered and
deleted (the seed's API).  The reconciler's apply calls it for every change to disk.

Every install ends the same way (:meth:`ModelInstallService._install_staged`): files that
are whole and verified under ``<models_dir>/.reconciler/tmp`` are probed, renamed into
``<models_dir>/<base>/<type>/<name>``, and recorded.  Local copies get there through
``copy.stage_copy``; remote sources (URL, Hugging Face, Civitai) through the download
queue as one multi-file job per model, in a staging folder named after the source and
revision so that an interrupted download resumes.  Scanning and the download cache live in
``scan.py`` and ``cache.py``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import (
    ModelConfigBase,
    canonical_field_names,
)
from reconciler.errors import (
    InvalidModelError,
    UnknownJobIDException,
)
from reconciler.events import EventBus
from reconciler.install import landing, remote
from reconciler.install.jobs import InstallStatus, ModelInstallJob, SourceJobMap
from reconciler.install.landing import PROBED_KEYS
from reconciler.install.local_paths import LocalPathInstalls, files_size
from reconciler.probe.probe import probe_model
from reconciler.settings import AppSettings
from reconciler.sources.base import LocalModelSource, ModelSource
from reconciler.sources.parse import parse_source
from reconciler.store.base import ModelRecordServiceBase

log = logging.getLogger(__name__)



class ModelInstallService(LocalPathInstalls):
    """Install, register and delete models, keeping records and files in step."""

    def __init__(
        self,
        app_config: AppSettings,
        record_store: ModelRecordServiceBase,
        download_queue: Any = None,
        metadata_store: Any = None,
        session: Any = None,
        event_bus: Optional[EventBus] = None,
    ) -> None:
        self.app_config = app_config
        self.record_store = record_store
        self.download_queue = download_queue
        self.metadata_store = metadata_store
        self.session = session
        self.event_bus = event_bus or EventBus()
        self._jobs: dict[int, ModelInstallJob] = {}
        self._jobs_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._own_queue = False
        self._install_lock = threading.RLock()
        #: what the last :meth:`start` found on disk (None before it ran)
        self.last_sync: Any = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, invoker: Any = None) -> None:
        """The seed's start-up: make the state folders, then :meth:`sync_to_config`.

        ``invoker`` is accepted for the seed's signature and not used.  The sync registers
        model files found under models_dir and the autoimport dir and reports records whose
        files are gone (in :attr:`last_sync`); it never deletes anything.
        """
        self.prepare()
        self.last_sync = self.sync_to_config()

    def prepare(self) -> None:
        """Create the models dir's state folders (what every install needs; no scan)."""
        self.app_config.tmp_dir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        """Stop the install workers (unfinished downloads keep their partial files)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None
        if self._own_queue and self.download_queue is not None:
            self.download_queue.stop()
            self.download_queue = None
            self._own_queue = False

    # --- the seed's job API --------------------------------------------------------------------
    def heuristic_import(
        self, source: str, config: Optional[Mapping[str, Any]] = None, access_token: Optional[str] = None
    ) -> ModelInstallJob:
        """Install from a source string in any of the forms `parse_source` accepts."""
        parsed = parse_source(source)
        if access_token and hasattr(parsed, "access_token"):
            parsed = parsed.model_copy(update={"access_token": access_token})
        return self.import_model(parsed, config)

    def import_model(
        self,
        source: ModelSource | str,
        config: Optional[Mapping[str, Any]] = None,
        *,
        resolved: Any = None,
        replace_key: Optional[str] = None,
    ) -> ModelInstallJob:
        """Start installing ``source`` in the background; returns its job at once.

        ``resolved`` (a ResolvedSource, e.g. from the lock file) pins exactly which files
        download; ``replace_key`` makes the job replace that record's files, keeping its key.
        """
        if isinstance(source, str):
            source = parse_source(source)
        inplace = bool(isinstance(source, LocalModelSource) and source.inplace)
        job = ModelInstallJob(id=next(self._ids), source=source, config_in=dict(config or {}), inplace=inplace,
                              replace_key=replace_key)
        job._resolved = resolved
        with self._jobs_lock:
            self._jobs[job.id] = job
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=max(2, self.app_config.max_parallel_dl),
                                                    thread_name_prefix="install")
            executor = self._executor
        self.emit("model_install_waiting", id=job.id, source=str(source))
        executor.submit(self._run_job, job)
        return job

    def install_model(self, source: ModelSource | str, config: Optional[Mapping[str, Any]] = None) -> ModelInstallJob:
        """The seed example's name for :meth:`import_model`."""
        return self.import_model(source, config)

    def list_jobs(self) -> list[ModelInstallJob]:
        with self._jobs_lock:
            return list(self._jobs.values())

    def get_job_by_id(self, id: int) -> ModelInstallJob:
        with self._jobs_lock:
            try:
                return self._jobs[id]
            except KeyError:
                raise UnknownJobIDException(f"no install job has id {id}") from None

    def get_job_by_source(self, source: ModelSource | str) -> list[ModelInstallJob]:
        text = str(parse_source(source) if isinstance(source, str) else source)
        return [job for job in self.list_jobs() if str(job.source) == text]

    def wait_for_job(self, job: ModelInstallJob, timeout: Optional[float] = 0) -> ModelInstallJob:
        """Block until ``job`` ends and return it; TimeoutError after ``timeout`` seconds.

        As in the seed, a timeout of 0 (the default) or None waits for as long as it takes.
        """
        if not job._done.wait(timeout or None):
            raise TimeoutError(f"install job {job.id} ({job.source}) did not finish within {timeout} s")
        return job

    def wait_for_installs(self, timeout: Optional[float] = 0) -> SourceJobMap:
        """Block until every job ends; returns source -> job (0 or None: no timeout).

        The map is keyed by the source objects the jobs were started with (the seed's
        ``source2job[source]``) and finds a job by its source string too.  TimeoutError
        after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout if timeout else None
        for job in self.list_jobs():
            if deadline is None:
                self.wait_for_job(job)
            else:
                left = deadline - time.monotonic()
                if left <= 0 and not job.in_terminal_state:
                    raise TimeoutError(f"install jobs did not finish within {timeout} s")
                self.wait_for_job(job, max(left, 1e-6))
        return SourceJobMap((job.source, job) for job in self.list_jobs())

    def cancel_job(self, job: ModelInstallJob) -> None:
        """Cancel a job that has not finished; its partial downloads are removed."""
        if job.in_terminal_state:
            return
        job.status = InstallStatus.CANCELLED
        download = job._download_job
        if download is not None and self.download_queue is not None:
            self.download_queue.cancel_job(download)

    def prune_jobs(self) -> None:
        """Forget jobs that have ended."""
        with self._jobs_lock:
            for job_id in [i for i, j in self._jobs.items() if j.in_terminal_state]:
                del self._jobs[job_id]

    def _run_job(self, job: ModelInstallJob) -> None:
        try:
            if job.cancelled:
                return
            if isinstance(job.source, LocalModelSource):
                job.status = InstallStatus.RUNNING
                self.emit("model_install_running", id=job.id, source=str(job.source))
                key = self._install_local_job(job)
            else:
                key = self._install_remote_job(job)
            if job.cancelled:
                return
            job.config_out = self.record_store.get_model(key)
            job.status = InstallStatus.COMPLETED
            self.emit("model_install_completed", id=job.id, source=str(job.source), key=key,
                       total_bytes=job.total_bytes)
        except BaseException as exc:  # noqa: BLE001 - a job reports its failure, the worker lives on
            if not job.cancelled:
                job.set_error(exc)
                log.debug("install job %s failed", job.id, exc_info=True)
                self.emit("model_install_error", id=job.id, source=str(job.source), error_type=job.error_type,
                           error=job.error)
        finally:
            if job.cancelled:
                self.emit("model_install_cancelled", id=job.id, source=str(job.source))
            job._done.set()

    def _install_local_job(self, job: ModelInstallJob) -> str:
        path = Path(job.source.path)
        job.local_path = path
        job.total_bytes = files_size(path) if path.exists() else 0
        if job.replace_key:
            self.record_store.get_model(job.replace_key)
            return self.copy_in(path, job.config_in, replace_key=job.replace_key, emit=False).key
        if job.inplace:
            return self.register_path(path, job.config_in)
        return self.copy_in(path, job.config_in, replace_key=None, emit=False).key

    def _install_remote_job(self, job: ModelInstallJob) -> str:
        return remote.install_remote_job(self, job)

    def repair_files(self, key: str, source: ModelSource, resolved: Any) -> ModelConfigBase:
        """Download only ``resolved.files`` again and put them back into the record's model."""
        return remote.repair_files(self, key, source, resolved)

    # --- scanning and caching (see scan.py / cache.py) ----------------------------------------
    def scan_directory(self, scan_dir: Path | str, install: bool = False) -> list[str]:
        """Register (or, with ``install``, install) every model found under ``scan_dir``."""
        from reconciler.install.scan import scan_directory

        return scan_directory(self, Path(scan_dir), install=install)

    def sync_to_config(self) -> Any:
        """Register new model files under models_dir and the autoimport dir; report vanished ones."""
        from reconciler.install.scan import sync_to_config

        return sync_to_config(self)

    def download_and_cache(self, source: ModelSource | str, access_token: Optional[str] = None,
                           timeout: float = 0) -> Path:
        """Download a remote source into the size-bounded cache (``<models_dir>/.cache``); no record.

        Returns the cached file or folder; a second call for the same source is a cache hit.
        ``timeout`` (seconds, 0 = none) bounds the download.
        """
        return remote.download_and_cache(self, source, access_token, timeout)

    def resolve(self, source: ModelSource) -> Any:
        """Resolve a remote source to its revision and files (network)."""
        from reconciler.sources.resolve import resolve_source

        return resolve_source(source, self.app_config, session=self.session)

    def queue(self) -> Any:
        """The download queue: the one given to the service, else one made from the settings."""
        with self._jobs_lock:
            if self.download_queue is None:
                from reconciler.download import DownloadQueueService

                s = self.app_config
                self.download_queue = DownloadQueueService(
                    max_parallel_dl=s.max_parallel_dl, requests_session=self.session,
                    connections_per_file=s.connections_per_file, min_segment_size=s.min_segment_size,
                    limit_rate=s.limit_rate, download_retries=s.download_retries, download_timeout=s.download_timeout,
                    direct_io=s.direct_io,
                )
                self._own_queue = True
            return self.download_queue

    def install_staged(self, model_path: Path, config: Mapping[str, Any], digests: Mapping[str, str],
                       replace_key: Optional[str], probed: bool = False, shown_as: Optional[str] = None) -> str:
        """Move staged files (under tmp/) into place and write the record; returns its key.

        Every install ends here (see :mod:`reconciler.install.landing`).  ``probed``:
        ``config`` already holds the prober's fields; ``shown_as`` names the source in a
        probe error instead of the staging path.
        """
        if probed:
            data = dict(config)
        else:
            try:
                data, _ = self.probe(model_path, config)
            except InvalidModelError as exc:
                if shown_as is None:
                    raise
                raise type(exc)(str(exc).replace(str(model_path), shown_as)) from exc
        with self._install_lock:  # the seed's single serialized install step: check, move, record
            return landing.land(self.record_store, self.app_config, model_path, data, digests, replace_key)

    @property
    def models_dir(self) -> Path:
        return self.app_config.models_dir

    # --- probing -------------------------------------------------------------------------------
    def probe(self, model_path: Path, config: Optional[Mapping[str, Any]] = None) -> tuple[dict[str, Any], list[str]]:
        """Probe ``model_path`` and merge ``config`` over the result (config wins).

        Returns the merged config dict (without key/path) and the prober's notes.
        """
        config = canonical_field_names(config or {})
        overrides = {k: config[k] for k in PROBED_KEYS if config.get(k) is not None}
        result = probe_model(model_path, overrides)
        merged = {**result.fields, **{k: v for k, v in config.items() if v is not None}}
        merged.setdefault("name", model_path.stem if model_path.is_file() else model_path.name)
        return merged, list(result.notes)

    # --- helpers ---------------------------------------------------------------------------------
    def emit(self, name: str, **payload: Any) -> None:
        """Report ``name`` with ``payload`` on the service's event bus (the seed's model events)."""
        self.event_bus.emit(name, **payload)
