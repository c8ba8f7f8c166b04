"""reconciler.download: the download queue (parallel, resumable, verified, with events).

Usable on its own; an event handler is called with the job itself::

    from reconciler.download import DownloadJobBase, DownloadQueueService

    def log_download_event(job: DownloadJobBase) -> None:
        print(f"job={job.id}: status={job.status.value} {job.bytes}/{job.total_bytes}")

    queue = DownloadQueueService(event_handlers=[log_download_event], max_parallel_dl=5)
    job = queue.create_download_job("https://host/model.safetensors", destdir="models/")
    queue.wait_for_job(job)
"""

from .http import make_session, redact_url, sanitize_filename
from .jobs import (
    DownloadEventHandler,
    DownloadJobBase,
    DownloadJobPath,
    DownloadJobRemoteSource,
    DownloadJobStatus,
    DownloadJobURL,
    DownloadPart,
    MultiFileDownloadJob,
    check_relpath,
)
from .queue import EVENT_PREFIX, DownloadQueueService
from .ratelimit import TokenBucket
from .retry import RetryPolicy
from .segments import FileDownload, PartState

__all__ = [
    "EVENT_PREFIX",
    "DownloadEventHandler",
    "DownloadJobBase",
    "DownloadJobPath",
    "DownloadJobRemoteSource",
    "DownloadJobStatus",
    "DownloadJobURL",
    "DownloadPart",
    "DownloadQueueService",
    "FileDownload",
    "MultiFileDownloadJob",
    "PartState",
    "RetryPolicy",
    "TokenBucket",
    "check_relpath",
    "make_session",
    "redact_url",
    "sanitize_filename",
]
