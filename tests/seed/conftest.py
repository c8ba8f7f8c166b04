"""Fixtures for the seed's examples: the fake hub on 127.0.0.1 standing in for
huggingface.co and civitai.com, and settings standing in for ``InvokeAIAppConfig``.

The examples in ../shared/seeds/model-manager-v2.txt are run as close to verbatim as an
offline machine allows: only URLs and repo ids are pointed at the local hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.settings import AppSettings, load_settings
from tests.hub.conftest import hub, lora_repo_files, sd_repo_files  # noqa: F401 - fixtures
from tests.hub.fakehub import FakeHub


@pytest.fixture
def seed_hub(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:  # noqa: F811
    """The fake hub, with HF_ENDPOINT and the Civitai endpoint pointed at it."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("RECONCILER_CIVITAI_ENDPOINT", hub.civitai_endpoint)
    for var in ("HF_TOKEN", "CIVITAI_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    yield hub


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppSettings:
    """The project's settings where the seed writes ``InvokeAIAppConfig.get_config()``."""
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_MODELS_DIR", "RECONCILER_DB", "RECONCILER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return load_settings(models_dir=tmp_path / "models")


@pytest.fixture
def hub_config(seed_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppSettings:
    """Settings whose Hugging Face and Civitai endpoints are the fake hub."""
    monkeypatch.chdir(tmp_path)
    for var in ("RECONCILER_MODELS_DIR", "RECONCILER_DB", "RECONCILER_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return load_settings(models_dir=tmp_path / "models", hf_endpoint=seed_hub.endpoint,
                         civitai_endpoint=seed_hub.civitai_endpoint)
