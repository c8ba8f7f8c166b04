"""The seed's "The ModelManagerService object": one object holding the services.

``mm.load`` and the ``load_model_by_*`` shortcuts belong to the loader (tracker issue 11);
until it lands ``mm.load`` is None, and these tests cover ``mm.store`` and ``mm.install``.
"""

from __future__ import annotations

from pathlib import Path

from reconciler import ModelInstallService, ModelManagerService, ModelRecordServiceBase
from reconciler.settings import AppSettings
from reconciler.testing.models import write_main_checkpoint


def test_mm_store_and_mm_install(config: AppSettings, tmp_path: Path) -> None:
    src = write_main_checkpoint(tmp_path / "stable-diffusion-v1-5.safetensors", base="sd-1")
    with ModelManagerService.build(config) as mm:
        assert isinstance(mm.store, ModelRecordServiceBase) and isinstance(mm.install, ModelInstallService)
        assert mm.install.record_store is mm.store
        job = mm.install.install_model(str(src))
        mm.install.wait_for_installs()
        assert job.complete, job.error
        configs = mm.store.get_model_by_attr(name='stable-diffusion-v1-5')
        assert len(configs) > 0
        assert configs[0].key == job.config_out.key and configs[0].base_model.value == "sd-1"


def test_build_runs_the_installers_start_up_sync(config: AppSettings) -> None:
    """ModelManagerService.build starts the installer, which (as the seed's start() does)
    registers model files already lying in the models dir."""
    placed = write_main_checkpoint(config.models_dir / "sd-1" / "main" / "found.safetensors", base="sd-1")
    with ModelManagerService.build(config) as mm:
        (found,) = mm.store.get_model_by_attr(name="found")
        assert (config.models_dir / found.path).resolve() == placed.resolve()
    assert placed.is_file()
