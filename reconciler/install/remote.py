"""Remote installs: download a resolved source through the queue, then install it.

The service's job runner, ``repair_files`` and ``download_and_cache`` call these.  Files
land in a staging folder under ``<models_dir>/.reconciler/tmp`` named after the source and
revision (so an interrupted download resumes), and reach the models dir only through
``ModelInstallService._install_staged``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.errors import (
    InstallError,
    IntegrityError,
    ReconcilerError,
    SourceError,
    UnknownModelException,
)
from reconciler.install.copy import discard, with_sha256
from reconciler.install.jobs import InstallStatus, ModelInstallJob
from reconciler.install.paths import resolve_model_path
from reconciler.install.tokens import token_for
from reconciler.netnames import redact_url
from reconciler.probe.hashing import file_states, sha256_file, states_hash
from reconciler.sources.base import ModelSource
from reconciler.sources.parse import parse_source

if TYPE_CHECKING:
    from reconciler.install.service import ModelInstallService

log = logging.getLogger(__name__)

#: a query value that :func:`reconciler.netnames.redact_url` replaced (``token=***``)
REDACTED_VALUE = re.compile(r"[?&][^=&#]+=(\*\*\*|%2A%2A%2A)(?:[&#]|$)", re.IGNORECASE)


def staging_name(source: str, revision: Optional[str]) -> str:
    """A stable staging folder per source and revision, so a killed apply resumes."""
    return "dl-" + hashlib.sha256(f"{source}@{revision}".encode()).hexdigest()[:20]


def install_remote_job(service: ModelInstallService, job: ModelInstallJob) -> str:
    """Resolve (unless the job carries a resolution), download, install; returns the key.

    The metadata goes to the metadata store when there is one, and the API's answer to the
    record's ``source_api_response``; a resolution that came without them (a lock file's,
    a saved plan's) fetches them first, best effort: failing to get or save them never
    fails the install.
    """
    resolved = job._resolved or service.resolve(job.source)
    job._resolved = resolved
    staging = service.app_config.tmp_dir / staging_name(str(job.source), resolved.revision)
    job.local_path = staging
    job.total_bytes = resolved.download_bytes
    job.status = InstallStatus.DOWNLOADING
    computed = download_resolved(service, job.source, resolved, staging, job)
    job.status = InstallStatus.RUNNING
    service.emit("model_install_running", id=job.id, source=str(job.source), local_path=str(staging))
    model_path = staging / resolved.files[0].dest if resolved.single_file else staging
    config = dict(job.config_in)
    config.setdefault("name", resolved.name_hint)
    config.setdefault("source", str(job.source))
    config.setdefault("source_revision", resolved.revision)
    if resolved.metadata is None:
        fetched = fetch_resolution(service, job.source, resolved.revision)
        if fetched is not None:
            resolved.metadata, resolved.api_response = fetched.metadata, fetched.api_response
    if resolved.api_response is not None:
        config.setdefault("source_api_response", resolved.api_response)
    # the record states what was computed from the bytes received, never the listing's value
    digests = {("" if resolved.single_file else dest): digest for dest, digest in computed.items()}
    try:
        key = service.install_staged(model_path, config, digests, job.replace_key, shown_as=str(job.source))
    finally:
        discard(staging)
    if service.metadata_store is not None and resolved.metadata is not None:
        try:
            if job.replace_key:
                try:
                    service.metadata_store.update_metadata(key, resolved.metadata)
                except UnknownModelException:
                    service.metadata_store.add_metadata(key, resolved.metadata)
            else:
                service.metadata_store.add_metadata(key, resolved.metadata)
        except Exception:  # noqa: BLE001 - metadata is a bonus, the model is installed
            log.warning("could not save metadata of %s", job.source, exc_info=True)
    return key

def part_progress(part: Any, staging: Path) -> dict[str, Any]:
    """One file of a download as ``model_install_downloading``'s ``parts[]`` shows it: the
    seed's keys (``source``: the file's URL, redacted; ``local_path``; ``bytes``;
    ``total_bytes``) plus its path in the model and its download status."""
    return {"source": redact_url(part.url), "local_path": str(staging / str(part.dest_relpath)),
            "bytes": part.bytes, "total_bytes": part.total_bytes, **part.progress()}


def download_resolved(service: ModelInstallService, source: ModelSource, resolved: Any, staging: Path,
                      job: Optional[ModelInstallJob] = None) -> dict[str, str]:
    """Download ``resolved.files`` into ``staging`` as one multi-file job (resumable).

    Each file's expected sha256 (the hub listing's, the lock's, the manifest's or
    Civitai's) goes to the downloader, which hashes the bytes as they stream and refuses a
    mismatch before the file leaves its ``.part``.  Returns ``{dest: sha256}`` of the bytes
    received (what a record may state), after checking them once more against the
    expectation.
    """
    from reconciler.download import DownloadJobStatus, DownloadPart, MultiFileDownloadJob

    for f in resolved.files:
        if REDACTED_VALUE.search(f.url):
            raise SourceError(
                f"{redact_url(f.url)}: the secret in this URL (shown as ***) is kept in no record, lock file or "
                "saved plan; apply the manifests that hold the URL instead")
    parts = [DownloadPart(url=f.url, dest_relpath=f.dest, expected_size=f.size, expected_sha256=f.sha256)
             for f in resolved.files]

    def on_progress(dl: MultiFileDownloadJob) -> None:
        # called with the download job, its counters and parts held still for the call
        if job is None:
            return
        job.bytes = dl.bytes
        job.total_bytes = dl.total_bytes or job.total_bytes
        service.emit("model_install_downloading", id=job.id, source=str(source), local_path=str(staging),
                   bytes=job.bytes, total_bytes=job.total_bytes, parts=[part_progress(p, staging) for p in dl.parts])

    download = MultiFileDownloadJob(source=str(source), destination=staging, parts=parts,
                                    access_token=download_token(source, resolved), event_handlers=[on_progress])
    if job is not None:
        job._download_job = download
    queue = service.queue()
    queue.submit_download_job(download)
    queue.wait_for_job(download)
    if job is not None and job.cancelled:
        raise InstallError("cancelled")
    if download.error is not None:
        raise _naming_the_file(download.error, download.parts)
    if download.status is not DownloadJobStatus.COMPLETED:
        raise InstallError(f"download of {source} ended as {download.status}")
    return received_digests(download.parts, resolved.files, staging)


def download_token(source: ModelSource, resolved: Any) -> Optional[str]:
    """The token for ``source``'s files: its own, else that of the source it was resolved
    from (the manifest's, which keeps a pasted link's ``?token=``: a plan's action names the
    source by its string, which never holds a token), else the environment's."""
    own = getattr(source, "access_token", None)
    planned = getattr(resolved, "source", None)
    if not own and planned is not None and str(planned) == str(source):
        own = getattr(planned, "access_token", None)
    return str(own) if own else token_for(source)


def received_digests(parts: list[Any], files: list[Any], staging: Path) -> dict[str, str]:
    """``{dest: sha256}`` of each downloaded part, as computed from its bytes.

    The downloader hashes while streaming (``part.actual_sha256``); a part it did not hash
    (a queue made with ``compute_sha256=False`` and no expected digest) is hashed from
    disk here.  A file whose bytes differ from the sha256 its resolution expects
    (``files``) is an IntegrityError: the downloader already refuses those, this is the
    second lock on the door.
    """
    expected = {f.dest: f.sha256.lower() for f in files if f.sha256}
    blobs = {f.dest: f.git_blob for f in files if not f.sha256 and getattr(f, "git_blob", None)}
    out: dict[str, str] = {}
    for part in parts:
        dest = str(part.dest_relpath)
        actual = part.actual_sha256 or sha256_file(staging / dest)
        want = expected.get(dest)
        if want and actual != want:
            discard(staging / dest)
            raise IntegrityError(f"{dest}: sha256 mismatch: got {actual}, expected {want}; nothing installed")
        got = _git_blob_of(staging / dest) if dest in blobs else None
        if got is not None and got != blobs[dest]:
            discard(staging / dest)
            raise IntegrityError(f"{dest}: git blob mismatch: got {got}, the listing names {blobs[dest]}; "
                                 "nothing installed")
        out[dest] = actual
    return out


#: plain git files (configs, tokenizers) are small; a bigger one without a sha256 is left to its size
GIT_BLOB_CHECK_MAX = 64 * 2**20


def _git_blob_of(path: Path) -> Optional[str]:
    """The git blob id of a downloaded file (the listing's check for a plain git file that
    has no sha256); None (no check) above :data:`GIT_BLOB_CHECK_MAX`."""
    from reconciler.sources.resolved import git_blob_id

    size = path.stat().st_size
    if size > GIT_BLOB_CHECK_MAX:
        return None
    return git_blob_id(path.read_bytes())


def _naming_the_file(error: BaseException, parts: list[Any]) -> BaseException:
    """``error`` with the failed file's path in front of its message (a Civitai download URL,
    or a hub URL deep in a repo, does not say which file of the model failed)."""
    from reconciler.download import DownloadJobStatus

    failed = [str(p.dest_relpath) for p in parts if p.status is DownloadJobStatus.ERROR]
    text = str(error)
    if len(failed) != 1 or not isinstance(error, ReconcilerError) or failed[0] in text:
        return error
    try:
        named = type(error)(f"{failed[0]}: {text}")
    except Exception:  # noqa: BLE001 - an error class with another signature keeps its text
        return error
    named.__cause__ = error
    return named

def repair_files(service: ModelInstallService, key: str, source: ModelSource, resolved: Any) -> ModelConfigBase:
    """Download only ``resolved.files`` again and put them back into the record's model.

    Each file lands beside the model under tmp/ and is renamed over the broken one, so a
    failed repair leaves the other files as they were.
    """
    record = service.record_store.get_model(key)
    path = resolve_model_path(service.models_dir, record)
    staging = service.app_config.tmp_dir / (staging_name(str(source), resolved.revision) + "-repair")
    try:
        computed = download_resolved(service, source, resolved, staging)
        for remote in resolved.files:
            fetched = staging / remote.dest
            target = path if resolved.single_file else path / remote.dest
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(fetched, target)
    finally:
        discard(staging)
    digests = {("" if resolved.single_file else dest): digest for dest, digest in computed.items()}
    old = {f.path: f.sha256 for f in service.record_store.get_files(key) if f.sha256}
    states = with_sha256(file_states(path), {**old, **digests})
    return service.record_store.update_model(key, {"hash": states_hash(states)}, files=states)  # one write


def download_and_cache(service: ModelInstallService, source: ModelSource | str, access_token: Optional[str] = None,
                       timeout: float = 0) -> Path:
    """Download a remote source into the size-bounded cache (``<models_dir>/.cache``); no record.

    Returns the cached file or folder.  A second call for the same source is a cache hit.
    ``timeout`` (seconds, 0 = none) bounds the download.
    """
    from reconciler.install.cache import DownloadCache

    if isinstance(source, str):
        source = parse_source(source)
    if access_token and hasattr(source, "access_token"):
        source = source.model_copy(update={"access_token": access_token})
    cache = DownloadCache(service.app_config.cache_dir / "downloads", service.app_config.download_cache_size)
    key = str(source)  # canonical, never carries a token
    hit = cache.get(key)
    if hit is not None:
        return hit
    resolved = service.resolve(source)
    staging = service.app_config.tmp_dir / (staging_name(key, resolved.revision) + "-cache")
    job = ModelInstallJob(id=0, source=source)
    done = threading.Event()
    error: list[BaseException] = []

    def run() -> None:
        try:
            download_resolved(service, source, resolved, staging, job)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="download-and-cache").start()
    if not done.wait(timeout or None):
        if job._download_job is not None and service.download_queue is not None:
            service.download_queue.cancel_job(job._download_job)
        discard(staging)
        raise TimeoutError(f"download of {source} did not finish within {timeout} s")
    if error:
        discard(staging)
        raise error[0]
    fetched = staging / resolved.files[0].dest if resolved.single_file else staging
    try:
        return cache.put(key, fetched, move=True)
    finally:
        discard(staging)

def fetch_resolution(service: ModelInstallService, source: ModelSource, revision: Optional[str]) -> Any:
    """A fresh resolution of a source installed from a lock or saved plan, for its metadata
    and API answer (best effort: None on failure, or for a source with no API)."""
    from reconciler.sources.base import CivitaiModelSource, HFModelSource
    from reconciler.sources.resolve import resolve_source

    if not isinstance(source, (HFModelSource, CivitaiModelSource)):
        return None
    try:
        return resolve_source(source, service.app_config, session=service.session, revision=revision)
    except Exception:  # noqa: BLE001 - the model is installed; metadata is a bonus
        log.info("no metadata for %s", source, exc_info=True)
        return None

