"""The watcher's view of the file system: watchdog observers on the folders it watches.

Folders, not files, are watched (see :func:`reconciler.reconcile.watch_events.watch_targets`);
:meth:`DirectoryObserver.reschedule` moves the watches when a symlink swap changed what the
paths resolve to.  When inotify runs out of watches or instances (ENOSPC / EMFILE) it logs
the sysctl that raises the limit and falls back to polling instead of failing.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable
from typing import Any

from reconciler.reconcile.watch_events import WatchSpec

log = logging.getLogger("reconciler.reconcile.watch")

#: how often the polling observer scans (seconds)
POLL_INTERVAL = 1.0


def make_observer(polling: bool) -> Any:
    """A watchdog observer: inotify (or the platform's own) unless ``polling``."""
    if polling:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=POLL_INTERVAL)
    from watchdog.observers import Observer

    return Observer()


class DirectoryObserver:
    """Watches a changing set of folders and hands every event to ``on_event``."""

    def __init__(self, on_event: Callable[[Any], None], polling: bool = False,
                 factory: Callable[[bool], Any] = make_observer) -> None:
        self.on_event = on_event
        self.polling = polling
        self.factory = factory
        self.observer: Any = None
        self.watches: dict[WatchSpec, Any] = {}
        self._specs: list[WatchSpec] = []
        self._handler: Any = None

    def start(self, specs: Iterable[WatchSpec]) -> None:
        """Start an observer and watch ``specs``."""
        self.observer = self.factory(self.polling)
        self.observer.start()
        self.watches = {}
        self.reschedule(specs)

    def reschedule(self, specs: Iterable[WatchSpec]) -> None:
        """Watch exactly ``specs``: new ones are added before old ones go (no gap)."""
        if self.observer is None:
            return
        from watchdog.events import FileSystemEventHandler

        self._specs = list(specs)
        if self._handler is None:
            self._handler = FileSystemEventHandler()
            self._handler.dispatch = self.on_event  # type: ignore[method-assign]
        for spec in self._specs:
            if spec in self.watches:
                continue
            log.debug("watching %s%s", spec.path, " (recursive)" if spec.recursive else "")
            try:
                self.watches[spec] = self.observer.schedule(self._handler, spec.path, recursive=spec.recursive)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EMFILE) and not self.polling:
                    sysctl = ("fs.inotify.max_user_watches" if exc.errno == errno.ENOSPC
                              else "fs.inotify.max_user_instances")
                    log.warning("cannot watch %s: %s; raise the limit with `sysctl -w %s=<more>`; "
                                "falling back to polling", spec.path, exc.strerror or exc, sysctl)
                    self.switch_to_polling()
                    return
                log.warning("cannot watch %s: %s", spec.path, exc)
        for spec in [s for s in self.watches if s not in self._specs]:
            try:
                self.observer.unschedule(self.watches.pop(spec))
            except (KeyError, OSError, ValueError):
                pass

    def switch_to_polling(self) -> None:
        """Replace the observer with a polling one (NFS, SMB, exhausted inotify limits)."""
        old = self.observer
        self.polling = True
        try:
            old.stop()
        except Exception:  # noqa: BLE001 - the old observer is being dropped anyway
            pass
        self.start(self._specs)

    def stop(self) -> None:
        """Stop watching."""
        if self.observer is not None:
            self.observer.stop()


__all__ = ["DirectoryObserver", "POLL_INTERVAL", "make_observer"]
