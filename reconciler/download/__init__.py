"""reconciler.download: the download queue (parallel, resumable, verified, with events).

Usable on its own::

    from reconciler.download import DownloadQueueService
    queue = DownloadQueueService(max_parallel_dl=5, event_handlers=[print])
    job = queue.create_download_job("https://host/model.safetensors", destdir=Path("tmp"))
    queue.wait_for_job(job)
"""

from .http import make_session, redact_url, sanitize_filename
from .jobs import (
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
