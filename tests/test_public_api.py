"""The package root re-exports the seed's names, lazily."""

from __future__ import annotations

import subprocess
import sys

import reconciler


def test_every_exported_name_resolves():
    for name in reconciler.__all__:
        assert getattr(reconciler, name) is not None, name


def test_seed_names_are_there():
    for name in ("ModelRecordServiceSQL", "ModelRecordServiceFile", "UnknownModelException", "DuplicateModelException",
                 "InvalidModelConfigException", "DownloadQueueService", "DownloadJobBase", "DownloadJobStatus",
                 "LocalModelSource", "URLModelSource", "HFModelSource", "CivitaiModelSource", "ModelInstallService",
                 "ModelInstallJob", "InstallStatus", "ModelManagerService", "AnyModelConfig", "ModelConfigBase",
                 "Manifest", "Plan", "plan", "apply"):
        assert name in reconciler.__all__, name


def test_import_reconciler_is_light():
    code = "import sys, reconciler; sys.exit(len([m for m in sys.modules if m.startswith('reconciler.')]))"
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == 0, "importing the package root loads no submodule until a name is used"


def test_model_manager_service_builds_and_installs(tmp_path):
    from reconciler.settings import load_settings
    from reconciler.testing.models import write_vae_checkpoint

    src = tmp_path / "vae.safetensors"
    write_vae_checkpoint(src, base="sd-1")
    settings = load_settings(models_dir=tmp_path / "models", environ={})
    with reconciler.ModelManagerService.build(settings) as manager:
        job = manager.install.heuristic_import(str(src))
        manager.install.wait_for_job(job, timeout=30)
        assert job.complete
        assert [m.name for m in manager.store.all_models()] == ["vae"]
