"""The install service with URL sources through the download queue, against a real local
HTTP server: events, cancel, and download_and_cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.install.service import ModelInstallService
from reconciler.settings import load_settings
from reconciler.store.sql import ModelRecordServiceSQL
from reconciler.testing.models import write_lora_kohya, write_vae_checkpoint
from tests.download.server import FaultServer


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def installer(tmp_path: Path):
    settings = load_settings(models_dir=tmp_path / "models", environ={}, download_cache_size=60_000)
    store = ModelRecordServiceSQL(tmp_path / "records.db")
    service = ModelInstallService(app_config=settings, record_store=store)
    service.start()
    events = []
    service.event_bus.subscribe(events.append)
    service.events = events  # type: ignore[attr-defined]
    yield service
    service.stop()
    store.close()


def test_url_import_reports_download_progress(installer, server, tmp_path):
    data = write_lora_kohya(tmp_path / "l.safetensors", base="sd-1").read_bytes()
    server.add_file("/m/lora.safetensors", data=data, etag='"v1"')
    job = installer.heuristic_import(server.url("/m/lora.safetensors"), {"name": "web-lora"})
    installer.wait_for_job(job, timeout=30)
    assert job.complete, job.error
    rec = job.config_out
    assert (installer.models_dir / rec.path).read_bytes() == data
    assert rec.source == server.url("/m/lora.safetensors") and rec.source_revision == '"v1"'
    names = [e.name for e in installer.events]
    assert names.index("model_install_downloading") < names.index("model_install_running") < names.index(
        "model_install_completed")
    downloading = [e for e in installer.events if e.name == "model_install_downloading"][-1].payload
    assert downloading["bytes"] == downloading["total_bytes"] == len(data)
    assert {"source", "local_path", "parts"} <= set(downloading)
    assert not any((installer.app_config.tmp_dir).iterdir()), "staging is cleared after install"


def test_url_import_html_is_refused(installer, server):
    server.add_file("/m/login.safetensors", data=b"<!DOCTYPE html><html>log in</html>", content_type="text/html")
    job = installer.heuristic_import(server.url("/m/login.safetensors"))
    installer.wait_for_job(job, timeout=30)
    assert job.errored and "token" in job.error.lower()
    assert installer.record_store.all_models() == []


def test_cancel_a_slow_download(installer, server, tmp_path):
    data = write_vae_checkpoint(tmp_path / "v.safetensors", base="sd-1").read_bytes()
    server.add_file("/m/slow.safetensors", data=data, drip=(256, 0.05))
    job = installer.heuristic_import(server.url("/m/slow.safetensors"))
    deadline = time.monotonic() + 10
    while not job.downloading and time.monotonic() < deadline:
        time.sleep(0.02)
    installer.cancel_job(job)
    installer.wait_for_job(job, timeout=30)
    assert job.cancelled and installer.record_store.all_models() == []
    assert "model_install_cancelled" in [e.name for e in installer.events]


def test_download_and_cache_hits_and_evicts(installer, server, tmp_path):
    a = write_lora_kohya(tmp_path / "a.safetensors", base="sd-1").read_bytes()
    b = write_lora_kohya(tmp_path / "b.safetensors", base="sdxl").read_bytes()
    server.add_file("/c/a.safetensors", data=a)
    server.add_file("/c/b.safetensors", data=b)
    first = installer.download_and_cache(server.url("/c/a.safetensors"))
    assert first.read_bytes() == a and installer.app_config.cache_dir in first.parents
    hits_before = server.count("/c/a.safetensors", "GET")
    again = installer.download_and_cache(server.url("/c/a.safetensors"))
    assert again == first and server.count("/c/a.safetensors", "GET") == hits_before, "a cache hit downloads nothing"
    assert installer.record_store.all_models() == [], "the cache makes no record"
    # the cache holds 60,000 bytes: adding enough entries evicts the least recently used
    for i in range(8):
        server.add_file(f"/c/x{i}.safetensors", data=b)
        installer.download_and_cache(server.url(f"/c/x{i}.safetensors"))
    assert not first.exists(), "least recently used entry evicted"
