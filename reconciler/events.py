"""A small synchronous event bus: every service reports progress through it.

Handlers are plain callables taking an :class:`Event`.  A handler that raises is logged
and otherwise ignored: a broken progress bar must never break a download or an install.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Something that happened: ``name`` (e.g. ``model_install_completed``) and a payload."""

    name: str
    payload: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


EventHandler = Callable[[Event], Any]


def call_handlers(handlers: list[EventHandler], event: Event) -> None:
    """Call each handler in order; log and swallow anything one of them raises."""
    for handler in list(handlers):
        try:
            handler(event)
        except Exception:  # noqa: BLE001 - a handler must not break the caller
            log.exception("event handler %r failed on %s", handler, event.name)


class EventBus:
    """Fan-out of events to subscribed handlers; thread-safe."""

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Add a handler; returns a function that removes it again."""
        with self._lock:
            self._handlers.append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)

        return unsubscribe

    def emit(self, name: str, **payload: Any) -> Event:
        """Build an event and deliver it to every handler."""
        event = Event(name=name, payload=payload)
        with self._lock:
            handlers = list(self._handlers)
        call_handlers(handlers, event)
        return event


__all__ = ["Event", "EventBus", "EventHandler", "call_handlers"]
