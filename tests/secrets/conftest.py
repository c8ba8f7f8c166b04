"""Fixtures: the fake hub and a workspace pointed at it (see tests/integrity/helpers.py)."""

from tests.integrity.helpers import hub, remote_ws  # noqa: F401 - fixtures
