"""Civitai sources against the fake Civitai API: metadata, the primary file, tokens, errors."""
# ruff: noqa: F811  (pytest fixtures imported from tests.hub.conftest are redefined as arguments)

from __future__ import annotations

import hashlib

import pytest
import requests

from reconciler.errors import AuthenticationRequiredError, SourceError, SourceNotFoundError, UnsafePathError
from reconciler.metadata import AnyModelRepoMetadataValidator, CivitaiMetadata, CommercialUsage
from reconciler.settings import AppSettings
from reconciler.sources import CivitaiModelSource, parse_source
from reconciler.sources.civitai import CivitaiMetadataFetch, resolve_civitai
from reconciler.sources.resolve import resolve_source
from tests.hub.conftest import hub, lora_repo_files  # noqa: F401 - fixtures
from tests.hub.fakehub import FakeHub

TOKEN = "civitai_sekrit_0123456789"
VERSION, MODEL = 62833, 58390


@pytest.fixture
def lora(hub: FakeHub, lora_repo_files: dict[str, bytes]) -> bytes:
    data = lora_repo_files["detail-tweaker.safetensors"]
    hub.add_civitai_version(
        VERSION, MODEL, files=[{"name": "extra.yaml", "bytes": b"a: 1\n", "type": "Config"},
                               {"name": "add_detail.safetensors", "bytes": data, "primary": True}],
        base_model="SD 1.5", trained_words=["detailed", "intricate"], model_name="Detail Tweaker LoRA",
        tags=["detail", "concept"], creator="alice", allow_commercial_use=["Image", "Sell"],
        allow_no_credit=False, allow_derivatives=True, allow_different_license=False)
    return data


def sources(hub: FakeHub) -> list[str]:
    c = hub.civitai_endpoint
    return [f"civitai:{VERSION}", f"{c}/models/{MODEL}?modelVersionId={VERSION}",
            f"{c}/models/{MODEL}/detail-tweaker?modelVersionId={VERSION}", f"{c}/api/download/models/{VERSION}"]


def test_every_form_resolves_to_the_primary_file(hub: FakeHub, lora: bytes) -> None:
    for text in sources(hub):
        source = parse_source(text, civitai_hosts=[hub.civitai_endpoint])
        assert source == CivitaiModelSource(version_id=VERSION)
        r = resolve_civitai(source, hub.civitai_endpoint, None, requests.Session())  # type: ignore[arg-type]
        assert r.single_file and r.revision == str(VERSION) and r.name_hint == "add_detail"
        [f] = r.files
        assert f.path == f.dest == "add_detail.safetensors"
        assert f.url == f"{hub.civitai_endpoint}/api/download/models/{VERSION}"
        assert f.sha256 == hashlib.sha256(lora).hexdigest()  # the API's upper-case hash, lower-cased
        assert f.size == len(lora) and r.download_bytes == len(lora)


def test_metadata(hub: FakeHub, lora: bytes) -> None:
    meta = CivitaiMetadataFetch(requests.Session(), hub.civitai_endpoint).from_id(VERSION)
    assert isinstance(meta, CivitaiMetadata)
    assert (meta.id, meta.version_id, meta.version_name) == (MODEL, VERSION, "v1.0")
    assert meta.name == "Detail Tweaker LoRA" and meta.author == "alice" and meta.tags == {"detail", "concept"}
    assert meta.trained_words == {"detailed", "intricate"} and meta.base_model_trained_on == "SD 1.5"
    assert meta.model_type == "LORA" and not meta.nsfw and meta.published is not None
    assert meta.credit_required and meta.allow_commercial_use and meta.allow_derivatives
    assert not meta.allow_different_licence
    assert meta.commercial_uses == {CommercialUsage.Image, CommercialUsage.Sell}
    assert [f.path for f in meta.files] == ["extra.yaml", "add_detail.safetensors"]
    assert meta.primary_file is not None and meta.primary_file.path == "add_detail.safetensors"
    assert AnyModelRepoMetadataValidator.validate_json(meta.model_dump_json()) == meta
    assert CivitaiMetadataFetch.from_json(meta.model_dump_json()) == meta
    fetch = CivitaiMetadataFetch(requests.Session(), hub.civitai_endpoint)
    assert fetch.from_url(f"{hub.civitai_endpoint}/models/{MODEL}?modelVersionId={VERSION}") == meta


def test_errors(hub: FakeHub, lora: bytes) -> None:
    with pytest.raises(SourceNotFoundError, match="Civitai model version 999 not found"):
        resolve_civitai(CivitaiModelSource(version_id=999), hub.civitai_endpoint, None)
    fetch = CivitaiMetadataFetch(requests.Session(), hub.civitai_endpoint)
    with pytest.raises(SourceNotFoundError, match="Civitai model 999 not found"):
        fetch.from_url(f"{hub.civitai_endpoint}/models/999")
    with pytest.raises(SourceError, match="not a Civitai model URL"):
        fetch.from_url("https://example.com/x.safetensors")
    with pytest.raises(SourceError, match="belongs to model 58390, not 1"):
        fetch.from_civitai_versionid(VERSION, model_id=1)
    with pytest.raises(SourceError, match="positive integer"):
        fetch.from_civitai_modelid("abc")
    hub.server.add_handler("/civitai/api/v1/model-versions/5", lambda r: (200, {}, b"{not json"))
    with pytest.raises(SourceError, match="malformed JSON"):
        fetch.from_id(5)
    hub.add_civitai_version(6, 60, files=[{"name": "../../evil.safetensors", "bytes": b"x", "primary": True}])
    with pytest.raises(UnsafePathError, match="evil.safetensors"):
        fetch.from_id(6)
    route = hub.server.add_handler("/civitai/api/v1/model-versions/7", lambda r: (401, {}, b"{}"))
    assert route is not None
    with pytest.raises(AuthenticationRequiredError, match="needs an access token"):
        fetch.from_id(7)


def test_token_goes_only_to_the_api_and_never_into_results(hub: FakeHub, lora_repo_files: dict[str, bytes],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = lora_repo_files["detail-tweaker.safetensors"]
    hub.add_civitai_version(VERSION, MODEL, files=[{"name": "gated.safetensors", "bytes": data, "primary": True}],
                            token=TOKEN)
    monkeypatch.setenv("CIVITAI_API_TOKEN", TOKEN)
    settings = AppSettings(civitai_endpoint=hub.civitai_endpoint)
    r = resolve_source(parse_source(f"civitai:{VERSION}"), settings)
    assert {path for path, _ in hub.authorizations()} == {
        f"/civitai/api/v1/model-versions/{VERSION}", f"/civitai/api/v1/models/{MODEL}"}
    texts = [repr(r), r.metadata.model_dump_json() if r.metadata else "", *r.notes, repr(r.files), str(r.source)]
    assert not any(TOKEN in t for t in texts)

    # the download URL: with the token the file comes (the CDN host never sees the token) ...
    url = r.files[0].url
    got = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert got.content == data and 'filename="gated.safetensors"' in got.headers["Content-Disposition"]
    assert all("authorization" not in {k.lower() for k in rec.headers} for rec in hub.cdn.requests)
    # ... without it, an HTML login page, as civitai.com does
    page = requests.get(url, timeout=5)
    assert page.headers["Content-Type"].startswith("text/html") and page.history


def test_pasted_download_url_token(hub: FakeHub, lora: bytes) -> None:
    source = parse_source(f"{hub.civitai_endpoint}/api/download/models/{VERSION}?token={TOKEN}",
                          civitai_hosts=[hub.civitai_endpoint])
    assert isinstance(source, CivitaiModelSource) and source.access_token == TOKEN
    r = resolve_civitai(source, hub.civitai_endpoint, None)
    assert TOKEN not in repr(r) and TOKEN not in r.files[0].url
    assert {v for _, v in hub.authorizations()} == {f"Bearer {TOKEN}"}


def test_model_id_finds_the_newest_version(hub: FakeHub, lora: bytes) -> None:
    newer = hub.add_civitai_version(VERSION + 100, MODEL, files=[{"name": "v2.safetensors", "bytes": b"two",
                                                                    "primary": True}], version_name="v2.0")
    hub.add_civitai_version(VERSION + 200, MODEL + 1, files=[{"name": "other.safetensors", "bytes": b"x",
                                                                "primary": True}])  # another model's
    fetch = CivitaiMetadataFetch(requests.Session(), hub.civitai_endpoint)
    meta = fetch.from_civitai_modelid(MODEL)
    assert isinstance(meta, CivitaiMetadata)
    assert (meta.id, meta.version_id, meta.version_name) == (MODEL, newer["id"], "v2.0")
    assert [f.path for f in meta.files] == ["v2.safetensors"]
    for url in (f"{hub.civitai_endpoint}/models/{MODEL}", f"{hub.civitai_endpoint}/models/{MODEL}/detail-tweaker",
                f"https://civitai.com/models/{MODEL}"):  # a civitai.com URL reads the configured endpoint
        assert fetch.from_url(url) == meta
    assert fetch.from_civitai_versionid(VERSION).version_id == VERSION  # an older version, by its id


def test_model_source_resolves_to_the_newest_version_with_a_note(hub: FakeHub, lora: bytes) -> None:
    source = parse_source(f"{hub.civitai_endpoint}/models/{MODEL}", civitai_hosts=[hub.civitai_endpoint])
    assert source == CivitaiModelSource(model_id=MODEL)
    r = resolve_civitai(source, hub.civitai_endpoint, None)  # type: ignore[arg-type]
    assert r.revision == str(VERSION) and r.files[0].path == "add_detail.safetensors"
    assert r.files[0].url == f"{hub.civitai_endpoint}/api/download/models/{VERSION}"
    assert r.notes == [f"Civitai model {MODEL} names no version: its newest, {VERSION} ('v1.0'), is used "
                       "(`reconciler lock` pins it)"]
    hub.add_civitai_version(VERSION + 1, MODEL, files=[{"name": "new.safetensors", "bytes": b"n", "primary": True}])
    assert resolve_civitai(source, hub.civitai_endpoint, None).revision == str(VERSION + 1)  # type: ignore[arg-type]
    pinned = resolve_civitai(source, hub.civitai_endpoint, None, revision=str(VERSION))  # type: ignore[arg-type]
    assert pinned.revision == str(VERSION) and pinned.notes == []  # a lock's revision wins
    hub.add_civitai_version(5, 5, files=[{"name": "five.safetensors", "bytes": b"5", "primary": True}])
    with pytest.raises(SourceError, match="belongs to model 5, not to model 58390"):
        resolve_civitai(source, hub.civitai_endpoint, None, revision="5")  # type: ignore[arg-type]
