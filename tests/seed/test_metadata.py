"""The seed's metadata examples and promises ("This Meta be Good: Model Metadata Storage"),
run as written against the fake hub on 127.0.0.1.

The later seed (model-manager-v2.txt) describes Hugging Face metadata; the earlier one
(model-manager-v2-earlier.txt) adds Civitai and the ``ModelMetadataStore``; where they
differ the later one wins.  ``HF_ENDPOINT`` and ``RECONCILER_CIVITAI_ENDPOINT`` point at
the fake hub (the ``seed_hub`` fixture), so the seed's bare ``HuggingFaceMetadataFetch()``
and ``CivitaiMetadataFetch()`` and its civitai.com URLs stay offline.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import TypeAdapter, ValidationError

from reconciler import (
    AnyModelRepoMetadata,
    CivitaiMetadata,
    CivitaiMetadataFetch,
    HuggingFaceMetadata,
    HuggingFaceMetadataFetch,
    ModelMetadataBase,
    ModelMetadataFetchBase,
    ModelMetadataStore,
    ModelRecordServiceSQL,
    UnknownModelException,
)
from reconciler.metadata import AnyModelRepoMetadataValidator
from reconciler.settings import AppSettings
from tests.hub.fakehub import FakeHub

REPO = "stabilityai/sdxl-turbo"
KEY = "fb237ace520b6716adc98bcb16e8462c"
MODEL_ID, OLD_VERSION, VERSION = 215796, 243290, 243291


def _config(name: str) -> dict[str, Any]:
    """A model config record for the metadata to hang on (the seed's ``model_config`` row)."""
    return {"name": name, "type": "main", "format": "checkpoint", "base": "sdxl",
            "path": f"sdxl/main/{name}.safetensors"}


@pytest.fixture
def hf_repo(seed_hub: FakeHub, sd_repo_files: dict[str, bytes]) -> dict[str, bytes]:
    """A diffusers repo on the fake hub, with tags and a model card."""
    seed_hub.add_repo(REPO, sd_repo_files, author="stabilityai", tags=["diffusers", "text-to-image", "turbo"],
                      card_data={"license": "other", "pipeline_tag": "text-to-image"})
    return sd_repo_files


@pytest.fixture
def civitai_model(seed_hub: FakeHub) -> dict[str, Any]:
    """Civitai model 215796 with two versions; the newer (243291) is its default."""
    model: dict[str, Any] = dict(model_name="Turbo Tool", creator="mage", tags=["tool", "turbo", "sdxl"],
                                 allow_no_credit=False, allow_commercial_use=["Image", "Sell"],
                                 allow_derivatives=True, allow_different_license=False)
    seed_hub.add_civitai_version(OLD_VERSION, MODEL_ID, files=[{"name": "turbo-v1.safetensors", "bytes": b"v1",
                                                                 "primary": True}], version_name="v1", **model)
    return seed_hub.add_civitai_version(
        VERSION, MODEL_ID,
        files=[{"name": "turbo-v2.safetensors", "bytes": b"version two", "primary": True},
               {"name": "turbo-v2.yaml", "bytes": b"a: 1\n", "type": "Config"}],
        base_model="SDXL Turbo", trained_words=["turbo", "fast"], version_name="v2", **model)


@pytest.fixture
def db(config: AppSettings) -> Iterator[ModelRecordServiceSQL]:
    """Stands in for ``ApiDependencies.invoker.services.db``: the record store's database."""
    store = ModelRecordServiceSQL(config.db_path)
    yield store
    store.close()


# --- "This Meta be Good": Example Usage ------------------------------------------------------------

def test_this_meta_be_good_example_usage(seed_hub: FakeHub, hf_repo: dict[str, bytes]) -> None:
    hf = HuggingFaceMetadataFetch()

    # fetch the metadata
    model_metadata = hf.from_id(REPO)
    assert isinstance(model_metadata, HuggingFaceMetadata)

    assert model_metadata.id == REPO and model_metadata.sha == seed_hub.head(REPO)
    assert {str(f) for f in model_metadata.files} == set(hf_repo)


def test_this_meta_be_good_example_usage_civitai_and_the_store(civitai_model: dict[str, Any],
                                                               db: ModelRecordServiceSQL) -> None:
    """The earlier seed's example: Civitai metadata, cached to the database, searched by tag."""
    db.add_model(KEY, _config("sdxl-turbo"))  # an existing model config record

    civitai = CivitaiMetadataFetch()

    # fetch the metadata
    model_metadata = civitai.from_url("https://civitai.com/models/215796")

    # get some common metadata fields
    author = model_metadata.author
    tags = model_metadata.tags

    # get some Civitai-specific fields
    assert isinstance(model_metadata, CivitaiMetadata)

    trained_words = model_metadata.trained_words
    base_model = model_metadata.base_model_trained_on
    thumbnail = model_metadata.thumbnail_url

    # cache the metadata to the database using the key corresponding to
    # an existing model config record in the `model_config` table
    sql_cache = ModelMetadataStore(db)
    sql_cache.add_metadata('fb237ace520b6716adc98bcb16e8462c', model_metadata)

    # now we can search the database by tag, author or model name
    # matches will contain a list of model keys that match the search
    matches = sql_cache.search_by_tag({"tool", "turbo"})

    assert (author, tags) == ("mage", {"tool", "turbo", "sdxl"})
    assert (trained_words, base_model) == ({"turbo", "fast"}, "SDXL Turbo")
    assert thumbnail == civitai_model["images"][0]["url"]
    assert model_metadata.version_id == VERSION, "a model page gives the model's default (newest) version"
    assert matches == {KEY}
    assert sql_cache.search_by_author("mage") == {KEY} and sql_cache.search_by_name("Turbo Tool") == {KEY}


# --- Structure of the Metadata objects ---------------------------------------------------------------

def test_structure_of_the_metadata_objects_model_metadata_base() -> None:
    base = ModelMetadataBase(name="sdxl-turbo", author="stabilityai", tags=["turbo", "turbo", "sdxl"])
    assert (base.name, base.author, base.tags) == ("sdxl-turbo", "stabilityai", {"turbo", "sdxl"})
    for cls in (HuggingFaceMetadata, CivitaiMetadata):
        assert issubclass(cls, ModelMetadataBase)
        assert {"name", "author", "tags"} <= set(cls.model_fields)


def test_structure_of_the_metadata_objects_huggingface_metadata(seed_hub: FakeHub,
                                                                hf_repo: dict[str, bytes]) -> None:
    meta = HuggingFaceMetadataFetch().from_id(REPO)
    assert meta.type == "huggingface" and meta.id == REPO
    assert (meta.name, meta.author) == ("sdxl-turbo", "stabilityai")
    assert meta.tags == {"diffusers", "text-to-image", "turbo"}
    assert meta.tag_dict["license"] == "other"
    assert isinstance(meta.last_modified, datetime)

    # files: List[Path], the files in the model repo
    paths = [Path(f) for f in meta.files]
    assert set(paths) == {Path(p) for p in hf_repo}
    unet = next(f for f in meta.files if f == Path("unet/diffusion_pytorch_model.fp16.safetensors"))
    assert (unet.name, unet.suffix, unet.parent, os.fspath(unet)) == (
        "diffusion_pytorch_model.fp16.safetensors", ".safetensors", Path("unet"),
        "unet/diffusion_pytorch_model.fp16.safetensors")
    assert Path("model_index.json") in meta.files
    # ... and each still knows its size and sha256 (LFS files)
    assert unet.size == len(hf_repo[str(unet)]) and unet.sha256 is not None and len(unet.sha256) == 64

    by_hand = HuggingFaceMetadata(name="x", id="o/x", files=[Path("model_index.json"), Path("vae/config.json")])
    assert [Path(f) for f in by_hand.files] == [Path("model_index.json"), Path("vae/config.json")]


def test_structure_of_the_metadata_objects_civitai_metadata(civitai_model: dict[str, Any]) -> None:
    meta = CivitaiMetadataFetch().from_civitai_versionid(VERSION)
    assert meta.type == "civitai" and (meta.id, meta.version_id) == (MODEL_ID, VERSION)
    assert (meta.name, meta.version_name) == ("Turbo Tool", "v2")
    assert all(isinstance(d, datetime) for d in (meta.created, meta.updated, meta.published))
    assert meta.description == "<p>A model.</p>" and meta.version_description == "<p>First version.</p>"
    assert meta.nsfw is False and meta.trained_words == {"turbo", "fast"}
    assert meta.download_url.endswith(f"/api/download/models/{VERSION}")
    assert meta.base_model_trained_on == "SDXL Turbo" and meta.thumbnail_url
    # weight_min/weight_max are not in the API's structured data: the seed's defaults
    assert (meta.weight_min, meta.weight_max) == (-1.0, 2.0)
    # the licensing conveniences
    assert meta.credit_required is True
    assert meta.allow_commercial_use is True
    assert meta.allow_derivatives is True
    assert meta.allow_different_license is False
    assert "allowCommercialUse=Image,Sell" in meta.license
    assert [f.name for f in meta.files] == ["turbo-v2.safetensors", "turbo-v2.yaml"]


def test_structure_of_the_metadata_objects_any_model_repo_metadata() -> None:
    """AnyModelRepoMetadata is a discriminated union of CivitaiMetadata and HuggingFaceMetadata."""
    adapter: TypeAdapter[Any] = TypeAdapter(AnyModelRepoMetadata)
    hf = adapter.validate_python({"type": "huggingface", "name": "x", "id": "o/x"})
    civ = adapter.validate_python(
        {"type": "civitai", "name": "y", "id": 1, "version_id": 2, "download_url": "https://civitai.com/x"})
    assert type(hf) is HuggingFaceMetadata and type(civ) is CivitaiMetadata
    with pytest.raises(ValidationError):
        adapter.validate_python({"type": "basemetadata", "name": "z"})
    assert type(AnyModelRepoMetadataValidator.validate_json(civ.model_dump_json())) is CivitaiMetadata


# --- Fetching Metadata from Online Repos ---------------------------------------------------------------

def test_fetching_metadata_from_online_repos_base_class() -> None:
    assert issubclass(ModelMetadataFetchBase, ABC)
    assert ModelMetadataFetchBase.__abstractmethods__ == {"from_url", "from_id"}
    with pytest.raises(TypeError):
        ModelMetadataFetchBase()  # type: ignore[abstract]
    assert issubclass(HuggingFaceMetadataFetch, ModelMetadataFetchBase)
    assert issubclass(CivitaiMetadataFetch, ModelMetadataFetchBase)


def test_fetching_metadata_from_online_repos_from_url(seed_hub: FakeHub, hf_repo: dict[str, bytes],
                                                      civitai_model: dict[str, Any]) -> None:
    """from_url() takes the URLs a user pastes; from_id() the repository's own id; the same answer."""
    hf = HuggingFaceMetadataFetch()
    by_id = hf.from_id(REPO)
    assert hf.from_url(f"https://huggingface.co/{REPO}") == by_id
    assert hf.from_url(f"https://huggingface.co/{REPO}/tree/main") == by_id

    civitai = CivitaiMetadataFetch()
    newest = civitai.from_id(str(VERSION))
    assert civitai.from_url(f"https://civitai.com/models/{MODEL_ID}") == newest
    assert civitai.from_url(f"https://civitai.com/models/{MODEL_ID}/turbo-tool") == newest
    older = civitai.from_url(f"https://civitai.com/models/{MODEL_ID}?modelVersionId={OLD_VERSION}")
    assert older.version_id == OLD_VERSION and older == civitai.from_id(OLD_VERSION)
    assert civitai.from_url(f"https://civitai.com/api/download/models/{OLD_VERSION}") == older


def test_fetching_metadata_from_online_repos_from_json(seed_hub: FakeHub, hf_repo: dict[str, bytes],
                                                       civitai_model: dict[str, Any]) -> None:
    hf_meta = HuggingFaceMetadataFetch().from_id(REPO)
    civ_meta = CivitaiMetadataFetch().from_id(VERSION)
    for meta in (hf_meta, civ_meta):
        again = ModelMetadataFetchBase.from_json(meta.model_dump_json())
        assert again == meta and type(again) is type(meta)
    assert [f.size for f in ModelMetadataFetchBase.from_json(hf_meta.model_dump_json()).files] == [
        f.size for f in hf_meta.files]


def test_fetching_metadata_from_online_repos_requests_session(seed_hub: FakeHub, hf_repo: dict[str, bytes],
                                                              civitai_model: dict[str, Any]) -> None:
    """A requests.Session given to the fetcher carries every HTTP request it makes."""
    class Recording(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            self.urls.append(url)
            return super().request(method, url, *args, **kwargs)

    session = Recording()
    HuggingFaceMetadataFetch(session).from_id(REPO)
    CivitaiMetadataFetch(session).from_civitai_modelid(MODEL_ID)
    assert any(f"/api/models/{REPO}" in u for u in session.urls)
    assert any(f"/api/v1/models/{MODEL_ID}" in u for u in session.urls)
    assert any(f"/api/v1/model-versions/{VERSION}" in u for u in session.urls)


def test_huggingface_metadata_fetch_overrides_from_json(seed_hub: FakeHub, civitai_model: dict[str, Any]) -> None:
    """HuggingFaceMetadataFetch.from_json() returns a HuggingFaceMetadata directly."""
    text = HuggingFaceMetadata(name="x", id="o/x", tags={"a"}).model_dump_json()
    assert type(HuggingFaceMetadataFetch.from_json(text)) is HuggingFaceMetadata
    civitai_json = CivitaiMetadataFetch().from_id(VERSION).model_dump_json()
    with pytest.raises(ValidationError):
        HuggingFaceMetadataFetch.from_json(civitai_json)  # not an AnyModelRepoMetadata: only HF
    assert type(CivitaiMetadataFetch.from_json(civitai_json)) is CivitaiMetadata


def test_civitai_metadata_fetch_from_civitai_modelid_and_versionid(civitai_model: dict[str, Any]) -> None:
    fetch = CivitaiMetadataFetch()
    # from_civitai_modelid(): the model's default version, as a CivitaiMetadata
    newest = fetch.from_civitai_modelid(MODEL_ID)
    assert isinstance(newest, CivitaiMetadata) and (newest.id, newest.version_id) == (MODEL_ID, VERSION)
    # from_civitai_versionid(): that version; functionally from_id()
    older = fetch.from_civitai_versionid(OLD_VERSION)
    assert isinstance(older, CivitaiMetadata) and (older.id, older.version_id) == (MODEL_ID, OLD_VERSION)
    assert older == fetch.from_id(OLD_VERSION) and older.version_name == "v1"


# --- Metadata Storage ----------------------------------------------------------------------------------

def test_metadata_storage_source_api_response(hub_config: AppSettings, seed_hub: FakeHub,
                                              lora_repo_files: dict[str, bytes]) -> None:
    """The later seed: the config record keeps the repository's API answer in
    ``source_api_response``, as a JSON blob."""
    from reconciler import DownloadQueueService, ModelInstallService

    seed_hub.add_repo("tiny/lora", lora_repo_files, tags=["lora"])
    record_store = ModelRecordServiceSQL(hub_config.db_path, logging.getLogger("seed"))
    queue = DownloadQueueService()
    queue.start()
    installer = ModelInstallService(app_config=hub_config, record_store=record_store, download_queue=queue)
    installer.start()
    try:
        job = installer.heuristic_import("tiny/lora")
        installer.wait_for_job(job, timeout=60)
        assert job.complete, job.error
        config = record_store.get_model(job.config_out.key)
        answer = json.loads(config.source_api_response)
        assert answer["id"] == "tiny/lora" and answer["sha"] == seed_hub.head("tiny/lora")
        assert {s["rfilename"] for s in answer["siblings"]} == set(lora_repo_files)
    finally:
        installer.stop()
        queue.stop()
        record_store.close()


def test_metadata_storage_model_metadata_store(civitai_model: dict[str, Any], seed_hub: FakeHub,
                                               hf_repo: dict[str, bytes], db: ModelRecordServiceSQL) -> None:
    """The earlier seed's ModelMetadataStore: keyed by model key, searchable, deleted with its config."""
    for key in (KEY, "other", "hf"):
        db.add_model(key, _config(key))
    metadata_store = ModelMetadataStore(db)
    civ = CivitaiMetadataFetch().from_civitai_modelid(MODEL_ID)
    hf = HuggingFaceMetadataFetch().from_id(REPO)

    # add_metadata(key, metadata); an unknown key is refused
    metadata_store.add_metadata(KEY, civ)
    metadata_store.add_metadata("hf", hf)
    with pytest.raises(UnknownModelException):
        metadata_store.add_metadata("no-such-key", civ)
    # get_metadata(key) -> AnyModelRepoMetadata
    assert metadata_store.get_metadata(KEY) == civ and metadata_store.get_metadata("hf") == hf
    # update_metadata(key, new_metadata)
    metadata_store.add_metadata("other", civ)
    assert metadata_store.search_by_tag({"tool"}) == {KEY, "other"}
    older = CivitaiMetadataFetch().from_civitai_versionid(OLD_VERSION).model_copy(update={"tags": {"archived"}})
    metadata_store.update_metadata("other", older)
    assert metadata_store.get_metadata("other").version_id == OLD_VERSION
    assert metadata_store.search_by_tag({"archived"}) == {"other"}  # the tags follow the update

    # search_by_tag(tags: Set[str]) -> Set[str]: models tagged with all the tags
    model_config_store = db
    matches = metadata_store.search_by_tag({"tool", "turbo"})
    models = [model_config_store.get_model(x) for x in matches]
    assert matches == {KEY} and [m.key for m in models] == [KEY]
    assert metadata_store.search_by_tag({"turbo"}) == {KEY, "hf"}
    assert metadata_store.search_by_tag({"turbo", "diffusers"}) == {"hf"}
    assert metadata_store.search_by_tag({"turbo", "nowhere"}) == set()
    # search_by_name(name: str) -> Set[str]; search_by_author(author: str) -> Set[str]
    assert metadata_store.search_by_name("Turbo Tool") == {KEY, "other"}
    assert metadata_store.search_by_author("stabilityai") == {"hf"}

    # deleting the config deletes its metadata
    db.del_model(KEY)
    with pytest.raises(UnknownModelException):
        metadata_store.get_metadata(KEY)
    assert metadata_store.search_by_tag({"tool"}) == set()
