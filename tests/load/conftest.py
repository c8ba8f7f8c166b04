"""Fixtures for the loader tests: an offline world (no HF cache, no TCP), a record store,
settings pointing at a tiny-configs folder, and ModelLoadService instances over them.

torch, diffusers and transformers are imported inside fixtures and tests only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.configs import ModelConfigBase, new_model_key, validate_config
from reconciler.settings import AppSettings, load_settings


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HF_HUB_OFFLINE=1, an empty HF cache (HF_HOME in tmp), and no TCP connection at all."""
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    try:  # the library reads these at import: patch the imported values too
        import huggingface_hub.constants as hc

        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
        monkeypatch.setattr(hc, "HF_HOME", str(hf_home), raising=False)
        monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hf_home / "hub"), raising=False)
        monkeypatch.setattr(hc, "HUGGINGFACE_HUB_CACHE", str(hf_home / "hub"), raising=False)
    except ImportError:
        pass
    real_connect = socket.socket.connect

    def no_network(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"loader tests are offline: connection to {address!r} refused")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    yield hf_home
    downloaded = [p for p in (hf_home / "hub").glob("models--*/blobs/*")]  # hf_hub_download writes blobs
    assert not downloaded, f"something was downloaded into the HF cache: {downloaded}"


def seed_hf_cache(hf_home: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """Put ``files`` (repo-relative path -> bytes) into the HF cache as a snapshot of ``repo_id``,
    the way a machine that once downloaded them holds them (snapshot files, refs/main)."""
    repo_dir = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo_dir / "snapshots" / revision
    for relative, data in files.items():
        (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / relative).write_bytes(data)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snapshot


@dataclass
class LoadEnv:
    """A models dir, a tiny-configs dir, a record store and a service factory."""

    root: Path
    store: Any
    settings: AppSettings
    services: list[Any] = field(default_factory=list)

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    @property
    def configs_dir(self) -> Path:
        assert self.settings.load_configs_dir is not None
        return self.settings.load_configs_dir

    def register(self, path: Path, type: str, format: str, base: str, **fields: Any) -> ModelConfigBase:  # noqa: A002
        config = validate_config({"key": new_model_key(), "name": path.name, "type": type, "format": format,
                                  "base": base, "path": str(path), **fields})
        self.store.add_model(config.key, config)
        return config

    def service(self, **settings: Any) -> Any:
        """A new ModelLoadService (a new RAM cache; the same convert cache folder)."""
        from reconciler.load import ModelLoadService

        app = self.settings.model_copy(update=settings) if settings else self.settings
        svc = ModelLoadService(app_config=app, record_store=self.store)
        self.services.append(svc)
        return svc


@pytest.fixture
def env(tmp_path: Path, offline: Path) -> Iterator[LoadEnv]:
    """Every test that loads through ``env`` runs offline (see :func:`offline`)."""
    from reconciler.store.base import ModelRecordServiceBase

    models = tmp_path / "models"
    models.mkdir()
    configs = tmp_path / "configs"
    configs.mkdir()
    settings = load_settings(environ={}, models_dir=models, load_configs_dir=configs, device="cpu")
    store = ModelRecordServiceBase.from_db_file(tmp_path / "records.db")
    yield LoadEnv(root=tmp_path, store=store, settings=settings)
    store.close()


@pytest.fixture
def same_weights() -> Callable[[Any, Any], bool]:
    """True when two modules hold equal tensors under equal names."""

    def check(a: Any, b: Any) -> bool:
        import torch

        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)

    return check
