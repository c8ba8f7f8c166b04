"""The seed's ModelSource sections ("LocalModelSource", "URLModelSource", "HFModelSource",
``ModelRepoVariant``) and heuristic_import's source strings, as a reader writes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic.networks import AnyHttpUrl

from reconciler import (
    HFModelSource,
    LocalModelSource,
    ModelInstallService,
    ModelRecordServiceSQL,
    URLModelSource,
)
from reconciler.sources.parse import parse_source
from reconciler.taxonomy import ModelRepoVariant
from reconciler.testing.models import write_lora_kohya
from tests.hub.fakehub import FakeHub


def test_local_model_source_fields(tmp_path: Path) -> None:
    source = LocalModelSource(path=str(tmp_path / "sushi.safetensors"))  # str | Path
    assert source.path == tmp_path / "sushi.safetensors" and source.inplace is False
    assert LocalModelSource(path=tmp_path, inplace=True).inplace is True


def test_url_model_source_fields() -> None:
    source = URLModelSource(url=AnyHttpUrl('https://civitai.com/api/download/models/63006'), access_token='letmein')
    assert str(source) == 'https://civitai.com/api/download/models/63006'
    assert source.access_token == 'letmein' and 'letmein' not in repr(source) + source.model_dump_json()
    with pytest.raises(ValidationError):
        URLModelSource(url='ftp://example.com/x.safetensors')


def test_model_repo_variant_names_and_values() -> None:
    table = {ModelRepoVariant.DEFAULT: "default", ModelRepoVariant.FP16: "fp16", ModelRepoVariant.FP32: "fp32",
             ModelRepoVariant.ONNX: "onnx", ModelRepoVariant.OPENVINO: "openvino", ModelRepoVariant.FLAX: "flax"}
    assert {v: v.value for v in table} == table and len(ModelRepoVariant) == 6
    assert ModelRepoVariant('fp16') is ModelRepoVariant.FP16
    assert ModelRepoVariant.Default is ModelRepoVariant.DEFAULT  # the older names stay aliases


def test_hf_model_source_fields() -> None:
    source = HFModelSource(repo_id='stabilityai/sdxl-turbo', variant='fp16', subfolder=Path('vae'),
                           access_token='hf_secret')
    # "You can also pass the string forms to variant directly"
    assert source.variant is ModelRepoVariant.FP16 and source.subfolder == 'vae'
    assert 'hf_secret' not in repr(source) + str(source)
    # a subfolder that names one file of the repo installs that file
    orange = HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder='OrangeMix/OrangeMix1.ckpt')
    assert orange.file == 'OrangeMix/OrangeMix1.ckpt' and orange.subfolder is None


@pytest.mark.parametrize("source", [
    LocalModelSource(path=Path("/opt/models/sushi.safetensors")),
    LocalModelSource(path=Path("/opt/models/sushi_diffusers")),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5'),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder='vae'),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder=Path('vae'), variant='fp16'),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', variant='fp16'),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder='OrangeMix/OrangeMix1.ckpt'),
    HFModelSource(repo_id='runwayml/stable-diffusion-v1-5', subfolder=Path('OrangeMix/OrangeMix1.ckpt'),
                  variant='fp32'),
    URLModelSource(url='https://example.com/loras/detail-tweaker.safetensors'),
], ids=str)
def test_str_of_a_source_parses_back_to_an_equal_source(source: object) -> None:
    assert parse_source(str(source)) == source


def test_a_civitai_download_url_parses_as_a_civitai_source() -> None:
    """Departure (README): a civitai.com URL string is read as the Civitai version it names,
    so that its metadata and SHA256 come along; the URLModelSource object still works."""
    parsed = parse_source(str(URLModelSource(url='https://civitai.com/api/download/models/63006')))
    assert type(parsed).__name__ == "CivitaiModelSource" and str(parsed) == "civitai:63006"


@pytest.mark.parametrize(("text", "expected"), [
    ("model/name", HFModelSource(repo_id="model/name")),
    ("model/name:fp32", HFModelSource(repo_id="model/name", variant="fp32")),
    ("model/name:fp16:vae", HFModelSource(repo_id="model/name", variant="fp16", subfolder="vae")),
    ("model/name::vae", HFModelSource(repo_id="model/name", subfolder="vae")),
    ("model/name:fp16:path/to/model.safetensors",
     HFModelSource(repo_id="model/name", variant="fp16", file="path/to/model.safetensors")),
    ("model/name::path/to/model.safetensors", HFModelSource(repo_id="model/name", file="path/to/model.safetensors")),
    ("https://civitai.com/models/58390/detail-tweaker-lora-lora", None),
])
def test_heuristic_import_source_forms(text: str, expected: object) -> None:
    parsed = parse_source(text)
    if expected is not None:
        assert parsed == expected
    else:  # a pasted Civitai model page: resolved to the model's newest version when planned
        assert type(parsed).__name__ == "CivitaiModelSource" and "58390" in str(parsed)


def test_hf_token_defaults_to_the_stored_login(seed_hub: FakeHub, hub_config, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """"if no access token is provided, then HfFolder.get_token() will be called to fill it
    in with the cached one": huggingface_hub's stored login opens a gated repo."""
    import huggingface_hub.constants

    token_file = tmp_path / "hf_home" / "token"
    token_file.parent.mkdir()
    token_file.write_text("hf_stored_login\n")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(token_file))
    data = write_lora_kohya(tmp_path / "g.safetensors", base="sd-1").read_bytes()
    seed_hub.add_repo("acme/gated", {"lora.safetensors": data})
    seed_hub.set_gated("acme/gated", token="hf_stored_login")
    store = ModelRecordServiceSQL(hub_config.db_path)
    installer = ModelInstallService(app_config=hub_config, record_store=store)
    try:
        job = installer.import_model(HFModelSource(repo_id="acme/gated", subfolder="lora.safetensors"))
        installer.wait_for_job(job)
        assert job.complete, job.error
        assert (hub_config.models_dir / job.config_out.path).read_bytes() == data
        assert any(value == "Bearer hf_stored_login" for _path, value in seed_hub.authorizations())
    finally:
        installer.stop()
        store.close()
