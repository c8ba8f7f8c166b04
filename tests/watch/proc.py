"""A real `reconciler watch` subprocess for tests: started on a workspace, its log parsed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RECONCILER = str(Path(sys.executable).with_name("reconciler"))
LINE = re.compile(r"reconcile #(?P<n>\d+) trigger=(?P<trigger>\S+) result=(?P<result>\S+) duration=(?P<dur>\S+)s "
                  r"actions=(?P<actions>\S+) revision=(?P<revision>\S+)(?: message=(?P<message>.*))?")


class WatchProc:
    """A running `reconciler -v watch`, its stderr in a file."""

    def __init__(self, ws: Any, *args: str, env: dict[str, str] | None = None) -> None:
        self.log_path = ws.root / f"watch-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = [RECONCILER, "-v", "--models-dir", str(ws.models_dir), "watch", "--debounce", "0.2",
                "--interval", "3600", *args]
        self.proc = subprocess.Popen(argv, cwd=ws.root, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def reconciles(self) -> list[dict[str, str]]:
        return [m.groupdict() for m in LINE.finditer(self.text())]

    def wait_reconcile(self, n: int, timeout: float = 15.0) -> dict[str, str]:
        """Reconcile number ``n``'s summary, once it is logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [r for r in self.reconciles() if int(r["n"]) == n]
            if done:
                return done[0]
            assert self.proc.poll() is None, f"watcher exited ({self.proc.returncode}):\n{self.text()}"
            time.sleep(0.02)
        raise AssertionError(f"no reconcile #{n} within {timeout} s:\n{self.text()}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()
