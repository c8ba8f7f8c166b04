"""scan_directory / sync_to_config: find models in folders and register them, never non-models."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from reconciler.errors import SourceNotFoundError
from reconciler.install.scan import find_models, scan, scan_directory, sync_to_config
from reconciler.install.service import ModelInstallService
from reconciler.settings import load_settings
from reconciler.store.sql import ModelRecordServiceSQL
from reconciler.testing.models import (
    write_diffusers_pipeline,
    write_lora_kohya,
    write_not_a_model,
    write_textual_inversion_folder,
    write_vae_checkpoint,
)


def make_installer(tmp_path: Path, **settings_kw) -> ModelInstallService:
    settings = load_settings(models_dir=tmp_path / "models", environ={}, **settings_kw)
    store = ModelRecordServiceSQL(tmp_path / "records.db")
    service = ModelInstallService(app_config=settings, record_store=store)
    service.start()
    return service


@pytest.fixture
def installer(tmp_path: Path):
    service = make_installer(tmp_path)
    yield service
    service.stop()
    service.record_store.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder of mixed models, non-models and state folders."""
    root = tmp_path / "library"
    write_diffusers_pipeline(root / "pipelines" / "sd15", base="sd-1")
    write_lora_kohya(root / "loras" / "style.safetensors", base="sd-1")
    write_vae_checkpoint(root / "vae.safetensors", base="sd-1")
    write_textual_inversion_folder(root / "emb" / "cat", base="sd-1")
    write_not_a_model(root / "loras" / "notes.safetensors", "text")
    write_not_a_model(root / "broken.ckpt", "html")
    (root / "README.md").write_text("not a candidate: no weights extension\n")
    write_lora_kohya(root / ".hidden" / "secret.safetensors")
    write_lora_kohya(root / ".cache" / "downloads" / "x.safetensors")
    return root


def paths_of(installer: ModelInstallService, keys: list[str]) -> set[str]:
    return {installer.record_store.get_model(k).path for k in keys}


def test_find_models_treats_a_folder_model_as_one(tree: Path) -> None:
    found = [p.relative_to(tree).as_posix() for p in find_models(tree)]
    # the pipeline's unet/vae weights are parts of it, never candidates of their own
    assert found == [
        "broken.ckpt",
        "vae.safetensors",
        "emb/cat",
        "loras/notes.safetensors",
        "loras/style.safetensors",
        "pipelines/sd15",
    ]
    assert not any(".hidden" in f or ".cache" in f or "unet" in f for f in found)


def test_scan_registers_models_in_place_and_reports_non_models(installer, tree, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="reconciler.install.scan"):
        report = scan(installer, tree)
    assert len(report.added) == 4
    recs = [installer.record_store.get_model(k) for k in report.added]
    assert {Path(r.path) for r in recs} == {
        (tree / "pipelines" / "sd15").absolute(),
        (tree / "loras" / "style.safetensors").absolute(),
        (tree / "vae.safetensors").absolute(),
        (tree / "emb" / "cat").absolute(),
    }
    assert all(r.inplace for r in recs)
    assert {(r.type.value, r.format.value) for r in recs} == {
        ("main", "diffusers"), ("lora", "lycoris"), ("vae", "checkpoint"), ("embedding", "embedding_folder"),
    }
    skipped = {p.name: why for p, why in report.skipped}
    assert set(skipped) == {"notes.safetensors", "broken.ckpt"}
    assert "text file" in skipped["notes.safetensors"] and "HTML" in skipped["broken.ckpt"]
    assert "notes.safetensors" in caplog.text and "broken.ckpt" in caplog.text
    # nothing but the four models was registered, nothing was copied
    assert len(installer.record_store.all_models()) == 4
    assert not installer.models_dir.joinpath("sd-1").exists()


def test_scan_again_adds_nothing_and_new_files_are_found(installer, tree) -> None:
    first = scan_directory(installer, tree)
    assert len(first) == 4
    assert scan_directory(installer, tree) == []
    write_vae_checkpoint(tree / "more" / "vae2.safetensors", base="sdxl")
    again = scan_directory(installer, tree)
    assert paths_of(installer, again) == {str((tree / "more" / "vae2.safetensors").absolute())}


def test_scan_a_registered_folder_model_is_not_entered(installer, tree) -> None:
    installer.register_path(tree / "pipelines" / "sd15")
    keys = scan_directory(installer, tree / "pipelines")
    assert keys == []


def test_scan_install_copies_into_models_dir(installer, tree) -> None:
    keys = scan_directory(installer, tree / "loras", install=True)
    assert len(keys) == 1
    rec = installer.record_store.get_model(keys[0])
    assert rec.path == "sd-1/lora/style.safetensors" and not rec.inplace
    assert (installer.models_dir / rec.path).read_bytes() == (tree / "loras" / "style.safetensors").read_bytes()


def test_scan_a_single_file_and_a_missing_path(installer, tmp_path) -> None:
    lora = write_lora_kohya(tmp_path / "one.safetensors")
    assert len(scan_directory(installer, lora)) == 1
    with pytest.raises(SourceNotFoundError):
        scan_directory(installer, tmp_path / "nope")


def test_sync_to_config_adopts_models_dir_registers_autoimport_flags_missing(tmp_path) -> None:
    auto = tmp_path / "autoimport"
    installer = make_installer(tmp_path, autoimport_dir=auto)
    try:
        models = installer.models_dir
        write_lora_kohya(models / "loras" / "by-hand.safetensors", base="sd-1")
        write_diffusers_pipeline(models / "sd-1" / "main" / "pipe", base="sd-1")
        write_not_a_model(models / "junk.safetensors", "truncated_header")
        write_vae_checkpoint(auto / "incoming.safetensors", base="sdxl")
        # a record whose file will vanish, and one that stays
        gone = write_lora_kohya(tmp_path / "elsewhere" / "gone.safetensors")
        gone_key = installer.register_path(gone)
        kept_key = installer.install_path(write_vae_checkpoint(tmp_path / "src" / "kept.safetensors"))
        gone.unlink()

        report = sync_to_config(installer)
        recs = {installer.record_store.get_model(k).path: installer.record_store.get_model(k) for k in report.added}
        assert set(recs) == {"loras/by-hand.safetensors", "sd-1/main/pipe",
                             str((auto / "incoming.safetensors").absolute())}
        assert not recs["loras/by-hand.safetensors"].inplace  # inside models_dir: relative, owned
        assert recs[str((auto / "incoming.safetensors").absolute())].inplace
        assert report.missing == [gone_key]
        assert installer.record_store.exists(gone_key)  # flagged, never deleted
        assert [p.name for p, _ in report.skipped] == ["junk.safetensors"]
        assert kept_key not in report.added

        again = sync_to_config(installer)
        assert again.added == [] and again.missing == [gone_key]
    finally:
        installer.stop()
        installer.record_store.close()


def test_sync_to_config_autoimport_inside_models_dir_is_registered_once_in_place(tmp_path) -> None:
    installer = make_installer(tmp_path, autoimport_dir=tmp_path / "models" / "inbox")
    try:
        write_lora_kohya(installer.models_dir / "inbox" / "new.safetensors")
        report = sync_to_config(installer)
        assert len(report.added) == 1
        rec = installer.record_store.get_model(report.added[0])
        assert rec.inplace and Path(rec.path).is_absolute()
    finally:
        installer.stop()
        installer.record_store.close()


def test_sync_to_config_without_models_dir(installer) -> None:
    report = sync_to_config(installer)
    assert (report.added, report.missing, report.skipped) == ([], [], [])


def test_model_registered_by_scan_shows_unmanaged_in_status(ws) -> None:
    """`status -o json` lists a scanned model with state `unmanaged`."""
    from reconciler.reconcile.services import open_services

    write_lora_kohya(ws.files / "found.safetensors", base="sd-1")
    settings = load_settings(models_dir=ws.models_dir, environ={})
    with open_services(settings, create=True) as services:
        keys = scan_directory(services.installer, ws.files)
    assert len(keys) == 1
    result = ws.cli("status", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [model] = doc["models"]
    assert model["key"] == keys[0] and model["state"] == "unmanaged" and model["managed_by"] is None
    assert model["name"] == "found" and model["type"] == "lora"
