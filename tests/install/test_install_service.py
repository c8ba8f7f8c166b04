"""The seed's ModelInstallService API on local sources: jobs, events, register/install/delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import InvalidModelError, UnknownJobIDException, UnknownModelException
from reconciler.events import Event
from reconciler.install.jobs import InstallStatus
from reconciler.install.service import ModelInstallService
from reconciler.settings import load_settings
from reconciler.store.sql import ModelRecordServiceSQL
from reconciler.testing.models import (
    write_diffusers_pipeline,
    write_lora_kohya,
    write_main_checkpoint,
    write_not_a_model,
    write_vae_checkpoint,
)


@pytest.fixture
def installer(tmp_path: Path):
    settings = load_settings(models_dir=tmp_path / "models", environ={})
    store = ModelRecordServiceSQL(tmp_path / "records.db")
    service = ModelInstallService(app_config=settings, record_store=store)
    service.start()
    events: list[Event] = []
    service.event_bus.subscribe(events.append)
    service.events = events  # type: ignore[attr-defined]
    yield service
    service.stop()
    store.close()


def test_import_model_copies_and_reports_events(installer, tmp_path):
    src = tmp_path / "sd.safetensors"
    write_main_checkpoint(src, base="sdxl")
    job = installer.import_model(str(src), {"name": "xl", "description": "mine"})
    installer.wait_for_job(job, timeout=30)
    assert job.complete and job.in_terminal_state and not job.errored
    rec = job.config_out
    assert rec.base.value == "sdxl" and rec.type.value == "main" and rec.description == "mine"
    assert (installer.models_dir / rec.path).read_bytes() == src.read_bytes()
    names = [e.name for e in installer.events]
    assert names[0] == "model_install_waiting" and names[-1] == "model_install_completed"
    assert "model_install_running" in names
    assert installer.events[-1].payload["key"] == rec.key
    assert installer.get_job_by_id(job.id) is job
    assert installer.get_job_by_source(str(src)) == [job]


def test_heuristic_import_inplace_and_wait_for_installs(installer, tmp_path):
    a = tmp_path / "a.safetensors"
    b = tmp_path / "b.safetensors"
    write_lora_kohya(a, base="sd-1")
    write_vae_checkpoint(b, base="sd-1")
    installer.heuristic_import(str(a))
    installer.import_model(str(b), {"name": "vae-b"})
    done = installer.wait_for_installs(timeout=30)
    assert {Path(str(k)).name for k in done} == {"a.safetensors", "b.safetensors"}
    assert done[str(a)].complete and done[str(b)].config_out.name == "vae-b"  # by source string too
    assert all(job.complete for job in done.values())
    installer.prune_jobs()
    assert installer.list_jobs() == []


def test_bad_file_errors_and_registers_nothing(installer, tmp_path):
    bad = tmp_path / "page.safetensors"
    write_not_a_model(bad, "html")
    job = installer.import_model(str(bad))
    installer.wait_for_job(job, timeout=30)
    assert job.errored and job.error_type and "page.safetensors" in job.error
    assert isinstance(job.exception, InvalidModelError)
    assert installer.record_store.all_models() == []
    assert installer.events[-1].name == "model_install_error"
    assert not any(installer.models_dir.rglob("*.safetensors"))


def test_unknown_job_id(installer):
    with pytest.raises(UnknownJobIDException):
        installer.get_job_by_id(999)


def test_config_overrides_win_over_probe(installer, tmp_path):
    src = tmp_path / "x.safetensors"
    write_main_checkpoint(src, base="sd-1")
    key = installer.install_path(src, {"base": "sd-2", "name": "forced"})
    rec = installer.record_store.get_model(key)
    assert rec.base.value == "sd-2" and rec.path == "sd-2/main/forced.safetensors"


def test_register_delete_keeps_outside_files(installer, tmp_path):
    folder = tmp_path / "pipe"
    write_diffusers_pipeline(folder, base="sd-1")
    key = installer.register_path(folder)
    rec = installer.record_store.get_model(key)
    assert rec.inplace and rec.format.value == "diffusers"
    installer.delete(key)
    assert folder.exists(), "delete never removes files outside models_dir"
    with pytest.raises(UnknownModelException):
        installer.record_store.get_model(key)


def test_delete_removes_installed_copy_and_unregister_keeps_it(installer, tmp_path):
    src = tmp_path / "l.safetensors"
    write_lora_kohya(src, base="sd-1")
    key = installer.install_path(src)
    path = installer.models_dir / installer.record_store.get_model(key).path
    installer.unregister(key)
    assert path.exists()
    key = installer.adopt_path(path)
    installer.delete(key)
    assert not path.exists() and src.exists()


def test_unconditionally_delete_removes_outside_file(installer, tmp_path):
    src = tmp_path / "gone.safetensors"
    write_lora_kohya(src, base="sd-1")
    key = installer.register_path(src)
    installer.unconditionally_delete(key)
    assert not src.exists()


def test_symlink_outside_source_folder_not_followed(installer, tmp_path):
    folder = tmp_path / "pipe"
    write_diffusers_pipeline(folder, base="sd-1")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    (folder / "leak.txt").symlink_to(secret)
    key = installer.install_path(folder, {"name": "pipe"})
    dest = installer.models_dir / installer.record_store.get_model(key).path
    assert not (dest / "leak.txt").exists()
    assert (dest / "model_index.json").exists()


def test_job_status_booleans(installer, tmp_path):
    src = tmp_path / "v.safetensors"
    write_vae_checkpoint(src, base="sd-1")
    job = installer.import_model(str(src))
    installer.wait_for_job(job, timeout=30)
    assert job.status is InstallStatus.COMPLETED
    assert (job.waiting, job.downloading, job.running, job.errored, job.cancelled) == (False,) * 5


def test_installing_the_same_model_twice_never_touches_the_first(installer, tmp_path):
    """Two installs that meet at one destination: the second is refused as a duplicate and
    the first record's files are the same files (same inode, same bytes) afterwards."""
    src = write_lora_kohya(tmp_path / "twice.safetensors", base="sd-1")
    first = installer.import_model(str(src))
    installer.wait_for_job(first)
    dest = installer.models_dir / first.config_out.path
    before = (dest.stat().st_ino, dest.read_bytes())
    write_lora_kohya(src, base="sd-1", rank=2)  # other bytes, same name, base and type
    second = installer.import_model(str(src))
    installer.wait_for_job(second)
    assert second.errored and second.error_type == "DuplicateModelException"
    assert first.config_out.key in second.error_message
    assert (dest.stat().st_ino, dest.read_bytes()) == before
    assert [c.key for c in installer.record_store.all_models()] == [first.config_out.key]
    assert not any(installer.app_config.tmp_dir.iterdir()), "the refused copy is cleared from staging"
