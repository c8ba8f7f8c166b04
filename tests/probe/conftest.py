"""Shared helpers for the prober's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.probe import ProbeResult


def assert_valid(result: ProbeResult, path: Path) -> None:
    """The probed fields plus a name and path make a valid config record of the probed kind."""
    config = result.to_config(name="m", path=path)
    assert config.type == result.type and config.format == result.format and config.base == result.base


@pytest.fixture
def check_valid():
    return assert_valid
