"""Shared by tests/integrity, tests/faults and tests/secrets: a workspace on the fake hub,
a manifest writer, tampering, and checks that nothing reached the models dir."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.download.server import Route
from tests.hub.conftest import hub  # noqa: F401 - fixture re-exported to the conftests


@pytest.fixture
def remote_ws(ws, hub, monkeypatch):  # noqa: F811
    """The ``ws`` workspace pointed at the fake hub (Hugging Face and Civitai), no tokens set."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("RECONCILER_CIVITAI_ENDPOINT", hub.civitai_endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    # no stored login of the machine's user: huggingface_hub reads this path at each get_token()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(ws.root / "hf-home" / "token"))
    monkeypatch.setenv("HF_TOKEN_PATH", str(ws.root / "hf-home" / "token"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "CIVITAI_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    ws.hub = hub
    return ws


def manifest(ws: Any, *entries: str, name: str = "remote.yaml", set_name: str = "team") -> Path:
    """A manifest of one ModelSet whose models are the flow-style ``entries``."""
    body = "\n".join(f"    - {e}" for e in entries)
    return ws.write_manifest(name, f"""
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {{name: {set_name}}}
        spec:
          models:
        {body}
        """.replace("\n        ", "\n"))


def flipped(data: bytes, at: int | None = None) -> bytes:
    """``data`` with one byte changed (same size); by default a byte in the middle."""
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def tamper(route: Route, at: int | None = None) -> bytes:
    """Make ``route`` serve its bytes with one flipped; returns the original bytes."""
    assert route.data is not None
    original = route.data
    route.data = flipped(original, at)
    assert len(route.data) == len(original) and route.data != original
    return original


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_files(ws: Any) -> list[str]:
    """Every file under the models dir outside ``.reconciler/`` (where models go)."""
    if not ws.models_dir.exists():
        return []
    return sorted(p.relative_to(ws.models_dir).as_posix() for p in ws.models_dir.rglob("*")
                  if p.is_file() and ".reconciler" not in p.relative_to(ws.models_dir).parts)


def record_names(ws: Any) -> set[str]:
    if not ws.db_path.exists():
        return set()
    return {r.name for r in ws.records()}


def file_records(ws: Any, key: str) -> list[Any]:
    """The per-file states (path, size, sha256...) the store holds for a record."""
    from reconciler.store.base import ModelRecordServiceBase

    store = ModelRecordServiceBase.from_db_file(ws.db_path)
    try:
        return store.get_files(key)
    finally:
        store.close()


def assert_record_matches_disk(ws: Any, name: str) -> None:
    """Every file of record ``name`` carries the sha256 of the bytes on disk (never None)."""
    (rec,) = [r for r in ws.records() if r.name == name]
    root = ws.models_dir / rec.path
    states = file_records(ws, rec.key)
    assert states, f"{name}: no file states"
    for state in states:
        path = root / state.path if state.path else root
        assert state.sha256 == sha256(path.read_bytes()), (name, state.path, state.sha256)
