"""A token bucket shared by every connection of a queue: the ``limit_rate`` cap.

One bucket for the whole queue (not per job, not per connection) because the point is to
leave an office link usable while a fleet pulls: five jobs times eight segments must
together stay under the cap.  The bucket may go into debt (a reader that just got a
1 MiB chunk pays for it whole and then waits), which keeps the long-run rate exact without
splitting reads.
"""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """``rate`` bytes per second with at most ``burst`` bytes banked; ``rate=None`` is no cap."""

    def __init__(self, rate: int | None, burst: int | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self.rate = rate
        self.burst = float(burst if burst is not None else max(64 * 1024, (rate or 0) // 4))
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        """Whether a cap is in force."""
        return self.rate is not None

    def chunk_size(self, default: int) -> int:
        """A read size that keeps the flow smooth under the cap (about 1/20 s of bytes)."""
        if self.rate is None:
            return default
        return max(16 * 1024, min(default, self.rate // 20))

    def consume(self, n: int, stop: threading.Event | None = None) -> None:
        """Take ``n`` bytes' worth of tokens, sleeping while the bucket is in debt.

        Returns early (without error) when ``stop`` is set; the caller checks it.
        """
        if self.rate is None or n <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            debt = -self._tokens
        if debt > 0:
            wait = debt / self.rate
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)


__all__ = ["TokenBucket"]
