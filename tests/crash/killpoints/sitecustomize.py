"""Deterministic kill points for crash tests: SIGKILL this process at a named call.

Put this folder on ``PYTHONPATH`` and set ``CRASH_KILL_AT`` to
``module:function:when:n[:filter]``; Python imports this file at start-up
(``sitecustomize``), wraps ``module.function`` (``Class.method`` works too), and the
``n``-th call whose arguments' repr contains ``filter`` (every call without one) kills the
process with SIGKILL ``before`` the call runs or ``after`` it returns.  Nothing else
changes, so a crash test can stop an apply exactly between two steps, e.g.::

    CRASH_KILL_AT=reconciler.install.copy:move_into_place:after:1:dl-   # renamed in, no record yet
    CRASH_KILL_AT=os:replace:after:1:/old-                              # mid-swap: old set aside
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import sys
import threading

_SPEC = os.environ.get("CRASH_KILL_AT")


def _install(spec: str) -> None:
    module_name, func_path, when, n, *rest = spec.split(":", 4)
    if when not in ("before", "after"):
        raise ValueError(f"CRASH_KILL_AT: when must be before or after, not {when!r}")
    target = int(n)
    needle = rest[0] if rest else ""
    owner = importlib.import_module(module_name)
    *parents, name = func_path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    lock = threading.Lock()
    seen = [0]

    def hit(args: tuple, kwargs: dict) -> bool:  # type: ignore[type-arg]
        if needle and needle not in repr((args, kwargs)):
            return False
        with lock:
            seen[0] += 1
            return seen[0] == target

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        fire = hit(args, kwargs)
        if fire and when == "before":
            die()
        result = original(*args, **kwargs)
        if fire:
            die()
        return result

    if isinstance(owner, type) and isinstance(owner.__dict__.get(name), staticmethod):
        setattr(owner, name, staticmethod(wrapper))
    else:
        setattr(owner, name, wrapper)
    # modules imported on the way here that did `from module import function` hold the original
    for module in list(sys.modules.values()):
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if value is original and module is not owner:
                setattr(module, attr, wrapper)


if _SPEC:
    _install(_SPEC)
