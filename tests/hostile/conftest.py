"""Hostile input: shared settings and checks.

Every refusal here must be what a user sees for any bad manifest: exit status 1, exactly one
line on stderr (``Error: <file>:<line>:<col>: ...``), no traceback, nothing on disk changed,
and quickly.  The CLI runs in-process (``ws.cli``, click's CliRunner with
``catch_exceptions=False``, so an unexpected exception fails the test with its traceback).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

if TYPE_CHECKING:
    from tests.conftest import Workspace

# hypothesis keeps caches (constants read from the code under test, unicode tables) in a
# .hypothesis/ folder of the working directory, written while test modules are collected:
# keep them out of the checkout, in one reused temporary folder.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"reconciler-hypothesis-{os.getuid()}")

# Bounded so that the whole hostile set runs in well under 30 s on the 2-core machine.
# ``deadline=None``: timing is asserted explicitly (generously) where it is the point, so a
# busy machine does not make hypothesis report a flaky deadline.  ``database=None``: no
# .hypothesis/ examples folder in the checkout.
HOSTILE = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.large_base_example, HealthCheck.data_too_large],
)
FEW = settings(HOSTILE, max_examples=20)

REFUSE_WITHIN_S = 1.0
"""A hostile manifest is refused in well under a second (measured in-process, ~1 ms typical)."""


@pytest.fixture
def lora_ws(ws: Workspace) -> Workspace:
    """A workspace whose files/lora.safetensors is a real sd-1 LoRA."""
    from reconciler.testing.models import write_lora_kohya

    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    return ws


def tree(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime_ns) and folder (None) under ``root``, symlinks not followed."""
    out: dict[str, tuple[int, int] | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink():
            out[rel] = None
        else:
            st = path.lstat()
            out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def write_raw(ws: Workspace, text: str | bytes, name: str = "m.yaml") -> Path:
    """Write a manifest exactly as given (no dedent), replacing any other manifest."""
    for old in ws.manifests.iterdir():
        old.unlink()
    path = ws.manifests / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def refused(ws: Workspace, command: str, text: str | bytes, *, within: float = REFUSE_WITHIN_S,
            name: str = "m.yaml") -> str:
    """Run ``command`` on a manifest holding ``text``: assert the refusal contract and return
    the stderr line (without ``Error: ``)."""
    path = write_raw(ws, text, name)
    before = tree(ws.root)
    args = [command, "-y", str(ws.manifests)] if command == "apply" else [command, str(ws.manifests)]
    start = time.perf_counter()
    result = ws.cli(*args)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr[:2000]!r}"
    line = lines[0]
    assert line.startswith(f"Error: {path}:"), line[:500]
    assert len(line) < 1000, f"message of {len(line)} characters"
    assert tree(ws.root) == before, "a refused manifest changed something on disk"
    assert elapsed < within, f"{command} took {elapsed:.2f} s"
    return line.removeprefix("Error: ")
