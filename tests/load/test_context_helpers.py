"""The seed's invocation-context helpers as library functions: download_and_cache_model,
load_local_model, load_remote_model (against the fake hub on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import LoadError, ModelNotFoundException
from reconciler.install.context import download_and_cache_model, load_local_model, load_remote_model
from reconciler.install.manager import ModelManagerService
from reconciler.probe.pickle_scan import UnsafePickleError
from reconciler.settings import AppSettings, load_settings
from reconciler.testing.models import write_lora_kohya, write_malicious_pickle, write_vae_diffusers
from tests.hub.conftest import hub  # noqa: F401 - fixture
from tests.hub.fakehub import FakeHub


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppSettings:
    """Offline, with an empty Hugging Face cache: loading never reaches for the hub.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, so the constant itself is patched
    (and restored), never left set for the tests that follow.
    """
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    return load_settings(models_dir=tmp_path / "models", environ={})


@pytest.fixture
def mm(settings: AppSettings) -> Iterator[ModelManagerService]:
    with ModelManagerService.build(settings) as manager:
        yield manager


def test_load_local_safetensors_and_cache_hit(mm: ModelManagerService, tmp_path: Path) -> None:
    path = write_lora_kohya(tmp_path / "l.safetensors", base="sd-1")
    loaded = load_local_model(path, manager=mm)
    with loaded as state_dict:
        assert state_dict and all(k.startswith("lora_") for k in state_dict)
    again = mm.load_local_model(path)
    assert again.cache_hit and not loaded.cache_hit
    with again as same:
        assert same is state_dict


def test_a_changed_file_is_loaded_again(mm: ModelManagerService, tmp_path: Path) -> None:
    path = write_lora_kohya(tmp_path / "l.safetensors", base="sd-1")
    first = load_local_model(path, manager=mm)
    write_lora_kohya(path, base="sd-1", rank=2)
    second = load_local_model(path, manager=mm)
    assert not second.cache_hit
    with first as a, second as b:
        assert any(a[k].shape != b[k].shape for k in a)


def test_load_local_pickle_weights_only_and_a_code_pickle_refused(mm: ModelManagerService, tmp_path: Path) -> None:
    import torch

    torch.save({"w": torch.ones(3)}, tmp_path / "w.pt")
    with load_local_model(tmp_path / "w.pt", manager=mm) as state_dict:
        assert torch.equal(state_dict["w"], torch.ones(3))
    marker = tmp_path / "pwned"
    evil = write_malicious_pickle(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafePickleError):
        load_local_model(evil, manager=mm)
    assert not marker.exists()


def test_load_local_diffusers_folder_and_custom_loader(mm: ModelManagerService, tmp_path: Path) -> None:
    folder = write_vae_diffusers(tmp_path / "vae", base="sd-1")
    with load_local_model(folder, manager=mm) as vae:
        assert type(vae).__name__ == "AutoencoderKL"
    seen: list[Path] = []

    def my_loader(path: Path) -> dict:
        seen.append(path)
        return {"path": str(path)}

    with load_local_model(folder / "config.json", loader=my_loader, manager=mm) as model:
        assert model == {"path": str(folder / "config.json")} and seen == [folder / "config.json"]


def test_load_local_errors(mm: ModelManagerService, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundException):
        load_local_model(tmp_path / "nope.safetensors", manager=mm)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LoadError, match="pass a loader"):
        load_local_model(tmp_path / "notes.txt", manager=mm)


def test_download_and_cache_model_and_load_remote_model(hub: FakeHub, tmp_path: Path,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_lora_kohya(tmp_path / "d.safetensors", base="sd-1").read_bytes()
    hub.add_repo("stabilityai/stable-diffusion-v4", {"checkpoints/sd4.safetensors": data, "README.md": b"#"})
    hub.server.add_file("/direct/lora.safetensors", data=data)
    settings = load_settings(models_dir=tmp_path / "models", hf_endpoint=hub.endpoint, environ={})
    with ModelManagerService.build(settings) as mm:
        path = download_and_cache_model("stabilityai/stable-diffusion-v4::checkpoints/sd4.safetensors", mm)
        assert path.read_bytes() == data and settings.cache_dir in path.parents
        assert mm.download_and_cache_model(hub.server.url("/direct/lora.safetensors")).read_bytes() == data
        loaded = load_remote_model(hub.server.url("/direct/lora.safetensors"), manager=mm)
        with loaded as state_dict:
            assert all(k.startswith("lora_") for k in state_dict)
        gets = hub.server.count("/direct/lora.safetensors", "GET")
        assert mm.load_remote_model(hub.server.url("/direct/lora.safetensors")).cache_hit
        assert hub.server.count("/direct/lora.safetensors", "GET") == gets, "cached: nothing downloaded again"
