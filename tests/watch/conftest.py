"""The `watcher` fixture: start `reconciler watch` subprocesses, all stopped at teardown."""

from __future__ import annotations

import pytest

from tests.watch.proc import WatchProc


@pytest.fixture
def watcher(ws):
    started: list[WatchProc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WatchProc:
        proc = WatchProc(ws, *args, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
