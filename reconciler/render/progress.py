"""Apply progress for people: a bar per model while it downloads, a line per action done.

Drawn on stderr (stdout stays the plan/JSON document), and only when stderr is a terminal;
piped output gets the finished-action lines alone.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Optional

from reconciler.events import Event
from reconciler.reconcile.plan import PlannedAction


class ApplyProgress:
    """Event handler + action callback that renders apply's progress with rich."""

    def __init__(self, console: Any, live: bool) -> None:
        self.console = console
        self.live = live
        self._lock = threading.Lock()
        self._tasks: dict[int, Any] = {}
        self._progress: Any = None
        if live:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=console, transient=True,
            )

    def __enter__(self) -> ApplyProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if self._progress is not None:
            self._progress.stop()

    def on_event(self, event: Event) -> None:
        """Install-service events: downloading updates a bar; an end removes it."""
        if self._progress is None:
            return
        job_id = event.payload.get("id")
        if not isinstance(job_id, int):
            return
        with self._lock:
            if event.name == "model_install_downloading":
                total = event.payload.get("total_bytes") or None
                task = self._tasks.get(job_id)
                if task is None:
                    task = self._progress.add_task(str(event.payload.get("source", "")), total=total)
                    self._tasks[job_id] = task
                self._progress.update(task, completed=event.payload.get("bytes") or 0, total=total)
            elif event.name in ("model_install_completed", "model_install_error", "model_install_cancelled"):
                task = self._tasks.pop(job_id, None)
                if task is not None:
                    self._progress.remove_task(task)

    def on_action(self, action: PlannedAction) -> None:
        """One line per action done; failures are reported once, as errors, when apply ends."""
        from rich.markup import escape

        if not action.result or str(action.result).startswith("error"):
            return
        self.console.print(f"[green]done[/] {action.action.value:<8} {escape(action.set)}/{escape(action.name)}: "
                           f"{escape(str(action.result))}", highlight=False)
