"""Fixtures: a running fake hub, and tiny real repos to put on it (built once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hub.fakehub import FakeHub
from tests.hub.repos import diffusers_repo_files, single_file_repo_files


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """A fake Hugging Face Hub + Civitai on 127.0.0.1; ``hub.endpoint`` is its URL."""
    with FakeHub() as running:
        yield running


@pytest.fixture(scope="session")
def sd_repo_files() -> dict[str, bytes]:
    """A diffusers sd-1 repo: fp32 and fp16 weights (text_encoder fp32 only), flax and onnx
    extras, and a single-file checkpoint at the top (a "mixed" repo)."""
    return diffusers_repo_files()


@pytest.fixture(scope="session")
def lora_repo_files() -> dict[str, bytes]:
    """A single-file repo: one kohya LoRA and a README."""
    return single_file_repo_files()
