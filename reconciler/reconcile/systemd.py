"""systemd's notify protocol, for ``Type=notify`` units (see ``examples/systemd/``).

``notify("READY=1")`` after the first successful reconcile, ``notify("WATCHDOG=1")`` every
:func:`watchdog_interval` seconds while the loop is alive, ``notify("STOPPING=1")`` on
SIGTERM, ``notify("STATUS=...")`` for ``systemctl status``.  The protocol is one datagram
to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a name starting with ``@`` is in the
abstract namespace); without that variable every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Optional

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ...) to systemd; True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":  # unset, or a vsock address we do not speak
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify %r to %r failed: %s", state, os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval() -> Optional[float]:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WatchdogSec``), or None when not asked.

    None when ``$WATCHDOG_USEC`` is unset, not a positive integer, or ``$WATCHDOG_PID`` is
    set to another process (the variables were inherited from a parent).
    """
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000
