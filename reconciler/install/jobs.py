"""ModelInstallJob: one install's state, as the seed describes it."""

from __future__ import annotations

import threading
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from reconciler.configs import ModelConfigBase
from reconciler.sources.parse import parse_source


class InstallStatus(str, Enum):
    """Where an install job is."""

    WAITING = "waiting"
    DOWNLOADING = "downloading"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL = {InstallStatus.COMPLETED, InstallStatus.ERROR, InstallStatus.CANCELLED}


class ModelInstallJob(BaseModel):
    """One model being installed from a source (local path, URL, HF repo, Civitai version)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: int
    source: Any  # a reconciler.sources ModelSource
    status: InstallStatus = InstallStatus.WAITING
    config_in: dict[str, Any] = Field(default_factory=dict)
    config_out: Optional[ModelConfigBase] = None
    inplace: bool = False
    local_path: Optional[Path] = None
    bytes: int = 0
    total_bytes: int = 0
    error_type: Optional[str] = None
    #: the traceback of the failure, as the seed says (its last line is the message)
    error: Optional[str] = None
    #: key of an existing record whose files this job replaces (reinstall), else None
    replace_key: Optional[str] = None

    _done: threading.Event = PrivateAttr(default_factory=threading.Event)
    _download_job: Any = PrivateAttr(default=None)
    _resolved: Any = PrivateAttr(default=None)
    _exception: Optional[BaseException] = PrivateAttr(default=None)

    # --- the seed's booleans -----------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        return self.status is InstallStatus.WAITING

    @property
    def downloading(self) -> bool:
        return self.status is InstallStatus.DOWNLOADING

    @property
    def running(self) -> bool:
        return self.status is InstallStatus.RUNNING

    @property
    def complete(self) -> bool:
        return self.status is InstallStatus.COMPLETED

    @property
    def errored(self) -> bool:
        return self.status is InstallStatus.ERROR

    @property
    def cancelled(self) -> bool:
        return self.status is InstallStatus.CANCELLED

    @property
    def in_terminal_state(self) -> bool:
        return self.status in TERMINAL

    @property
    def exception(self) -> Optional[BaseException]:
        """The exception that failed the job, for callers that want to re-raise it."""
        return self._exception

    @property
    def error_message(self) -> Optional[str]:
        """The failure in one line (``error`` holds the whole traceback)."""
        return None if self._exception is None else (str(self._exception) or self.error_type)

    def set_error(self, exc: BaseException) -> None:
        """Fail the job with ``exc``: its class name, its traceback, status ``error``."""
        self._exception = exc
        self.error_type = type(exc).__name__
        self.error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.status = InstallStatus.ERROR


class SourceJobMap(dict):  # type: ignore[type-arg]
    """What :meth:`ModelInstallService.wait_for_installs` returns: source -> its job.

    Keyed by the source objects the jobs were started with, so the seed's
    ``source2job[source]`` finds a job by the very object the caller passed; a source
    string (``"hf://owner/name"``, a path, a URL) finds it too, by its canonical form.
    When one source was installed twice, the later job is the one kept.
    """

    def _by_text(self, key: str) -> Optional[ModelInstallJob]:
        wanted = {key}
        try:
            wanted.add(str(parse_source(key)))
        except Exception:  # noqa: BLE001 - a string that is no source just finds nothing
            pass
        found = None
        for source, job in self.items():
            if str(source) in wanted:
                found = job
        return found

    def __missing__(self, key: Any) -> ModelInstallJob:
        found = self._by_text(key) if isinstance(key, str) else None
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and self._by_text(key) is not None)

    def get(self, key: Any, default: Any = None) -> Any:
        """Like ``dict.get``, also by source string."""
        try:
            return self[key]
        except KeyError:
            return default
