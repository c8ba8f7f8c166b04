"""ModelInstallJob: one install's state, as the seed describes it."""

from __future__ import annotations

import threading
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from reconciler.configs import ModelConfigBase


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

    def set_error(self, exc: BaseException) -> None:
        self._exception = exc
        self.error_type = type(exc).__name__
        self.error = str(exc)
        self.status = InstallStatus.ERROR
