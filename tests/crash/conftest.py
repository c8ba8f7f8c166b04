"""Crash-test fixtures: one rig (and fake hub) per record store for the whole session (each
rig's reference applies, v1 and v2, run once)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.crash.harness import CrashRig
from tests.hub.fakehub import FakeHub


@pytest.fixture(scope="session")
def rigs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], CrashRig]]:
    """``rigs(store)``: the session's :class:`CrashRig` on ``sqlite`` or ``yaml`` (``--db
    records.yaml``), each with a fake hub of its own."""
    made: dict[str, CrashRig] = {}
    hubs: list[FakeHub] = []

    def get(store: str) -> CrashRig:
        if store not in made:
            hub = FakeHub()
            hubs.append(hub)
            rig = CrashRig(tmp_path_factory.mktemp(f"crash-{store}"), hub, store)
            rig.reference("v1")
            rig.reference("v2")
            made[store] = rig
        return made[store]

    yield get
    for hub in hubs:
        hub.close()


@pytest.fixture(params=["sqlite", "yaml"])
def rig(request: pytest.FixtureRequest, rigs: Callable[[str], CrashRig]) -> CrashRig:
    """The rig on the SQLite store, then on the YAML store."""
    return rigs(request.param)
