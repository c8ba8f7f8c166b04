"""The one retry policy of the download queue: exponential backoff with jitter.

Every network operation of a download goes through :meth:`RetryPolicy.run`, which asks
:func:`reconciler.errors.is_retriable` whether an error is worth another try, honours a
server's ``Retry-After`` (``exc.retry_after``), and sleeps on an event so that a pause or
cancel interrupts the wait at once.  A failure that came after progress (bytes written
since the previous failure) does not use up an attempt: on a link that drops every few
minutes a 20 GB download still finishes, while a server that keeps failing at the same
byte gives up after ``attempts`` tries: so a server whose copy of a file is short fails
that file after at most :meth:`RetryPolicy.max_total_wait` seconds of backoff (15.5 s
with the defaults) plus the requests themselves.  The error it gives up with says so
("...; gave up after 5 retries").
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.errors import is_retriable

T = TypeVar("T")


class Interrupted(Exception):
    """Internal signal: the job was paused or cancelled while waiting or transferring."""


@dataclass
class RetryPolicy:
    """How often and how patiently to retry.

    ``attempts`` is the number of *re*-tries after the first failure without progress;
    the delay before retry ``n`` (1-based) is ``min(backoff_max, backoff_base * 2**(n-1))``
    scaled by a random factor in ``[1 - jitter, 1]`` ("equal jitter" keeps a floor so a
    fleet does not hammer a recovering server).  ``Retry-After`` wins when it is longer,
    capped at ``retry_after_max``.
    """

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5
    retry_after_max: float = 300.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``exc``."""
        base = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempt - 1)))
        wait = base * (1.0 - self.jitter * self.rng.random())
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > 0:
            wait = max(wait, min(float(retry_after), self.retry_after_max))
        return wait

    def max_total_wait(self) -> float:
        """The longest the backoff before giving up can add up to (no ``Retry-After``)."""
        return sum(min(self.backoff_max, self.backoff_base * 2 ** (n - 1)) for n in range(1, self.attempts + 1))

    def min_total_wait(self) -> float:
        """The shortest it can add up to (every jitter draw at its floor)."""
        return self.max_total_wait() * (1.0 - self.jitter)

    def run(
        self,
        operation: Callable[[], T],
        *,
        progress: Callable[[], int] = lambda: 0,
        stop: threading.Event | None = None,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """Call ``operation`` until it returns, raising the last error when retries run out.

        ``progress`` returns a counter that grows with useful work (bytes on disk); an error
        after progress resets the attempt count.  ``stop`` set during a backoff raises
        :class:`Interrupted`.
        """
        failures = 0
        last_progress = progress()
        while True:
            try:
                return operation()
            except Interrupted:
                raise
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                now = progress()
                if now > last_progress:
                    failures = 0
                    last_progress = now
                failures += 1
                if failures > self.attempts:
                    _say_gave_up(exc, self.attempts)
                    raise
                wait = self.delay(failures, exc)
                if on_retry is not None:
                    on_retry(failures, exc, wait)
                if stop is not None:
                    if stop.wait(wait):
                        raise Interrupted() from None
                else:
                    threading.Event().wait(wait)


def _say_gave_up(exc: BaseException, retries: int) -> None:
    """Append "gave up after N retries" to an error's one-line message (ours only)."""
    if retries and len(exc.args) == 1 and isinstance(exc.args[0], str) and "gave up after" not in exc.args[0]:
        exc.args = (f"{exc.args[0]}; gave up after {retries} retries",)


__all__ = ["Interrupted", "RetryPolicy"]
