"""Fixtures shared by every test package: a workspace with a models dir, manifests and a
CLI runner that calls the real click app in-process."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli import main as cli_main


@dataclass
class Workspace:
    """A temporary project: ./models, ./manifests, ./files and a CLI runner."""

    root: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def db_path(self) -> Path:
        return self.models_dir / ".reconciler" / "records.db"

    def write_manifest(self, name: str, text: str) -> Path:
        """Write a manifest (dedented) under ./manifests."""
        path = self.manifests / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def cli(self, *args: str, input: str | None = None, models_dir: Path | None = None) -> Result:
        """Run `reconciler --models-dir <models> ARGS...` in-process."""
        argv = ["--models-dir", str(models_dir or self.models_dir), *args]
        return self.runner.invoke(cli_main, argv, input=input, catch_exceptions=False)

    def plan_json(self, *paths: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        result = self.cli("plan", "-o", "json", *extra, *(paths or (str(self.manifests),)))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def apply(self, *paths: str, extra: tuple[str, ...] = ()) -> Result:
        return self.cli("apply", "-y", *extra, *(paths or (str(self.manifests),)))

    def records(self) -> list[Any]:
        """Every record in the workspace's default SQLite store."""
        from reconciler.store.base import ModelRecordServiceBase

        store = ModelRecordServiceBase.from_db_file(self.db_path)
        try:
            return store.all_models()
        finally:
            store.close()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of every file under the models dir, to prove nothing changed."""
        if not self.models_dir.exists():
            return {}
        return {
            p.relative_to(self.models_dir).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.models_dir.rglob("*"))
            if p.is_file() and not p.name.endswith((".lock", "-wal", "-shm"))
        }


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh workspace; the cwd moves there so ./reconciler.yaml etc. never leak in."""
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_MODELS_DIR", "RECONCILER_DB", "RECONCILER_CONFIG", "RECONCILER_LOCK"):
        monkeypatch.delenv(var, raising=False)
    workspace = Workspace(root=tmp_path)
    workspace.files.mkdir()
    workspace.manifests.mkdir()
    yield workspace
