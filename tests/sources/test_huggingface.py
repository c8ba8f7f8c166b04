"""Hugging Face sources against the fake hub: parse -> resolve, variants, revisions, errors, tokens."""
# ruff: noqa: F811  (pytest fixtures imported from tests.hub.conftest are redefined as arguments)

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from huggingface_hub import hf_hub_download

from reconciler.errors import AuthenticationRequiredError, SourceError, SourceNotFoundError, UnsafePathError
from reconciler.metadata import AnyModelRepoMetadataValidator, HuggingFaceMetadata
from reconciler.settings import AppSettings
from reconciler.sources import HFModelSource, parse_source
from reconciler.sources.huggingface import HuggingFaceMetadataFetch, file_variant, resolve_hf, select_files
from reconciler.sources.resolve import resolve_source
from reconciler.taxonomy import ModelRepoVariant
from tests.hub.conftest import hub, lora_repo_files, sd_repo_files  # noqa: F401 - fixtures
from tests.hub.fakehub import FakeHub

REPO = "acme/tiny-sd"
TOKEN = "hf_sekrit_token_0123456789"


def resolve(hub: FakeHub, text: str, token: str | None = None, revision: str | None = None):
    return resolve_hf(parse_source(text), hub.endpoint, token, revision=revision)  # type: ignore[arg-type]


def paths(resolved) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.path for f in resolved.files]


@pytest.fixture
def sd(hub: FakeHub, sd_repo_files: dict[str, bytes]) -> str:
    return hub.add_repo(REPO, sd_repo_files, tags=["diffusers", "text-to-image"],
                        card_data={"license": "creativeml-openrail-m"})


# --- variant selection on a diffusers repo -------------------------------------------------------


def test_default_is_fp16_with_fallback_note(hub: FakeHub, sd: str, sd_repo_files: dict[str, bytes]) -> None:
    r = resolve(hub, REPO)
    assert r.revision == sd and not r.single_file and r.name_hint == "tiny-sd"
    got = paths(r)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in got
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in got
    assert "text_encoder/model.safetensors" in got  # no fp16 there: default weights ...
    assert r.notes == ["text_encoder/: no fp16 weights; using its default weights"]  # ... with a note
    for always in ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
                   "tokenizer/merges.txt", "unet/config.json", "text_encoder/config.json"):
        assert always in got
    for never in ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_flax_model.msgpack",
                  "unet/model.onnx", "v1-5-pruned-emaonly.safetensors", "README.md", ".gitattributes"):
        assert never not in got
    assert [f.dest for f in r.files] == got  # whole repo: dest = repo path
    unet = next(f for f in r.files if f.path == "unet/diffusion_pytorch_model.fp16.safetensors")
    data = sd_repo_files[unet.path]
    assert unet.size == len(data) and unet.sha256 == hashlib.sha256(data).hexdigest()
    assert unet.url == f"{hub.endpoint}/{REPO}/resolve/{sd}/{unet.path}"  # pinned to the commit
    assert r.download_bytes == sum(len(sd_repo_files[p]) for p in got)
    assert r.etag is None


def test_explicit_variants(hub: FakeHub, sd: str) -> None:
    default = paths(resolve(hub, f"{REPO}:default"))
    assert "unet/diffusion_pytorch_model.safetensors" in default
    assert not any(".fp16." in p for p in default)
    assert resolve(hub, f"{REPO}:default").notes == []
    fp32 = resolve(hub, f"{REPO}:fp32")
    assert paths(fp32) == default and fp32.notes == []  # un-suffixed weights are fp32 by convention
    onnx = paths(resolve(hub, f"{REPO}:onnx"))
    assert "unet/model.onnx" in onnx and not any(p.endswith(".safetensors") for p in onnx)
    flax = paths(resolve(hub, f"hf://{REPO}:flax:unet"))
    assert flax == ["unet/config.json", "unet/diffusion_flax_model.msgpack"]
    with pytest.raises(SourceNotFoundError, match="no openvino weights"):
        resolve(hub, f"{REPO}:openvino")


def test_subfolder_narrows_and_dest_is_relative(hub: FakeHub, sd: str) -> None:
    r = resolve(hub, f"{REPO}:fp16:vae")
    assert paths(r) == ["vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert [f.dest for f in r.files] == ["config.json", "diffusion_pytorch_model.fp16.safetensors"]
    assert not r.single_file and r.name_hint == "tiny-sd-vae"
    te = resolve(hub, f"{REPO}::text_encoder")  # variant not given: fp16, falls back with a note
    assert [f.dest for f in te.files] == ["config.json", "model.safetensors"]
    assert te.notes == ["text_encoder/: no fp16 weights; using its default weights"]
    with pytest.raises(SourceNotFoundError, match="no folder 'nope'"):
        resolve(hub, f"{REPO}::nope")


def test_file_takes_exactly_that_file(hub: FakeHub, sd: str) -> None:
    for text in (f"{REPO}::v1-5-pruned-emaonly.safetensors", f"hf://{REPO}:fp16:v1-5-pruned-emaonly.safetensors"):
        r = resolve(hub, text)
        assert r.single_file and paths(r) == ["v1-5-pruned-emaonly.safetensors"]
        assert r.name_hint == "v1-5-pruned-emaonly"
    nested = resolve(hub, f"{REPO}::unet/diffusion_pytorch_model.safetensors")
    assert nested.files[0].dest == "diffusion_pytorch_model.safetensors"  # installed as a file
    with pytest.raises(SourceNotFoundError, match="no file 'missing.safetensors'"):
        resolve(hub, f"{REPO}::missing.safetensors")


def test_single_file_repo(hub: FakeHub, lora_repo_files: dict[str, bytes]) -> None:
    hub.add_repo("acme/lora", lora_repo_files)
    r = resolve(hub, "acme/lora")
    assert r.single_file and paths(r) == ["detail-tweaker.safetensors"] and r.notes == []
    assert r.files[0].dest == "detail-tweaker.safetensors" and r.name_hint == "lora"
    # a fp16 and a default file of the same model: the variant picks one
    data = lora_repo_files["detail-tweaker.safetensors"]
    hub.add_repo("acme/two", {"m.safetensors": data, "m.fp16.safetensors": data[:100], "m.bin": data})
    assert paths(resolve(hub, "acme/two")) == ["m.fp16.safetensors"]
    assert paths(resolve(hub, "acme/two:default")) == ["m.safetensors"]  # safetensors over .bin
    # several different models and no config: refuse to guess
    hub.add_repo("acme/many", {"a.safetensors": data, "b.safetensors": data})
    with pytest.raises(SourceError, match=r"several model files \(a.safetensors, b.safetensors\).*acme/many::"):
        resolve(hub, "acme/many")


def test_plain_model_folder_repo(hub: FakeHub, sd_repo_files: dict[str, bytes]) -> None:
    vae = {k[len("vae/"):]: v for k, v in sd_repo_files.items() if k.startswith("vae/")}
    hub.add_repo("acme/vae", vae)
    r = resolve(hub, "acme/vae")
    assert not r.single_file and paths(r) == ["config.json", "diffusion_pytorch_model.fp16.safetensors"]
    assert paths(resolve(hub, "acme/vae:default"))[-1] == "diffusion_pytorch_model.safetensors"


def test_select_files_sharded_and_index() -> None:
    listing = ["model_index.json", "unet/config.json",
               "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
               "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
               "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
               "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
               "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
               "unet/diffusion_pytorch_model.safetensors.index.json",
               "unet/diffusion_pytorch_model.bin", "other/x.safetensors"]
    index = {"_class_name": "X", "unet": ["diffusers", "UNet2DConditionModel"], "safety_checker": [None, None]}
    chosen, single, notes = select_files(listing, HFModelSource(repo_id="a/b"), model_index=index)
    assert chosen == ["model_index.json", "unet/config.json",
                      "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
                      "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
                      "unet/diffusion_pytorch_model.safetensors.index.fp16.json"]
    assert not single and notes == []
    chosen, _, _ = select_files(listing, HFModelSource(repo_id="a/b", variant=ModelRepoVariant.Default),
                                model_index=index)
    assert "unet/diffusion_pytorch_model.safetensors.index.json" in chosen
    assert "unet/diffusion_pytorch_model.bin" not in chosen and "other/x.safetensors" not in chosen
    assert file_variant("v1-5-pruned-emaonly.safetensors") is None
    assert file_variant("sd_xl_base_1.0.safetensors") is None
    assert file_variant("model.fp16-00001-of-00002.safetensors") == "fp16"


# --- revisions ---------------------------------------------------------------------------------


def test_revision_moves_and_pins(hub: FakeHub, sd: str, sd_repo_files: dict[str, bytes]) -> None:
    changed = dict(sd_repo_files)
    changed["vae/diffusion_pytorch_model.fp16.safetensors"] = b"new vae bytes"
    new_sha = hub.add_repo(REPO, changed)
    assert new_sha != sd
    moved = resolve(hub, f"{REPO}:fp16:vae")
    assert moved.revision == new_sha
    assert moved.files[1].sha256 == hashlib.sha256(b"new vae bytes").hexdigest()
    pinned = resolve(hub, f"{REPO}:fp16:vae", revision=sd)  # a lock file's commit wins
    assert pinned.revision == sd and pinned.files[1].size != len(b"new vae bytes")
    assert resolve(hub, f"{REPO}@{sd}:fp16:vae").revision == sd  # so does repo@sha
    hub.add_repo(REPO, sd_repo_files, branch="dev")
    assert resolve(hub, f"{REPO}@dev").revision == hub.head(REPO, "dev")


def test_not_found_errors(hub: FakeHub, sd: str) -> None:
    with pytest.raises(SourceNotFoundError, match="repo acme/nope not found"):
        resolve(hub, "acme/nope")
    with pytest.raises(SourceNotFoundError, match="no revision 'no-such-branch'"):
        resolve(hub, f"{REPO}@no-such-branch")
    with pytest.raises(SourceNotFoundError, match="no revision"):
        resolve(hub, REPO, revision="f" * 40)


def test_malformed_json(hub: FakeHub, sd: str) -> None:
    hub.break_json(REPO)
    with pytest.raises(SourceError, match="malformed JSON"):
        resolve(hub, REPO)
    with pytest.raises(SourceError, match="malformed JSON"):
        HuggingFaceMetadataFetch(requests.Session(), hub.endpoint).from_id(REPO)


@pytest.mark.parametrize("hostile", ["../../x.safetensors", "/etc/passwd", "unet/../../../x", "C:/x", "a\\..\\b"])
def test_hostile_listing_refused(hub: FakeHub, hostile: str) -> None:
    hub.add_raw_listing("evil/repo", ["model_index.json", "unet/config.json", hostile])
    with pytest.raises(UnsafePathError) as err:
        resolve(hub, "evil/repo:fp16:unet")  # refused whole, even though that file is not selected
    assert repr(hostile)[1:-1] in str(err.value) and "evil/repo" in str(err.value)


# --- tokens ------------------------------------------------------------------------------------


def test_gated_repo(hub: FakeHub, sd: str) -> None:
    hub.set_gated(REPO, TOKEN)
    with pytest.raises(AuthenticationRequiredError, match=f"{REPO} is gated.*HF_TOKEN"):
        resolve(hub, REPO)
    with pytest.raises(AuthenticationRequiredError, match="token given has no access") as err:
        resolve(hub, REPO, token="hf_wrong_token")
    assert "hf_wrong_token" not in str(err.value)
    r = resolve(hub, REPO, token=TOKEN)
    assert r.revision == sd
    source = HFModelSource(repo_id=REPO, access_token=TOKEN)  # the source's own token works too
    assert resolve_hf(source, hub.endpoint, None).revision == sd
    assert {v for _, v in hub.authorizations()} == {f"Bearer {TOKEN}", "Bearer hf_wrong_token"}


def test_private_repo(hub: FakeHub, sd: str) -> None:
    hub.set_private(REPO, TOKEN)
    with pytest.raises(AuthenticationRequiredError, match="private and needs an access token"):
        resolve(hub, REPO)
    with pytest.raises(SourceNotFoundError):
        resolve(hub, REPO, token="hf_wrong")
    assert resolve(hub, REPO, token=TOKEN).revision == sd


def test_token_never_leaks(hub: FakeHub, sd: str) -> None:
    hub.set_gated(REPO, TOKEN)
    r = resolve_hf(HFModelSource(repo_id=REPO, access_token=TOKEN), hub.endpoint, None)
    texts = [repr(r), str(r.source), repr(r.source), r.metadata.model_dump_json() if r.metadata else "",
             *r.notes, *(f.url for f in r.files), repr(r.files)]
    assert not any(TOKEN in t for t in texts)
    fetch = HuggingFaceMetadataFetch(requests.Session(), hub.endpoint, token=TOKEN)
    assert TOKEN not in repr(fetch)
    with pytest.raises(AuthenticationRequiredError) as err:
        resolve_hf(HFModelSource(repo_id=REPO, access_token="hf_bad_one"), hub.endpoint, None)
    assert "hf_bad_one" not in str(err.value) and err.value.__cause__ is None


def test_no_token_sent_when_none_given(hub: FakeHub, sd: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")  # resolve_hf itself never reads it implicitly
    resolve(hub, REPO)
    assert hub.authorizations() == []
    settings = AppSettings(hf_endpoint=hub.endpoint)
    resolve_source(parse_source(REPO), settings)  # resolve_source passes HF_TOKEN on
    assert {v for _, v in hub.authorizations()} == {"Bearer hf_from_env"}


# --- metadata and the real client -------------------------------------------------------------


def test_metadata(hub: FakeHub, sd: str) -> None:
    r = resolve(hub, REPO)
    meta = r.metadata
    assert isinstance(meta, HuggingFaceMetadata)
    assert meta.id == REPO and meta.name == "tiny-sd" and meta.author == "acme" and meta.sha == sd
    assert meta.tags == {"diffusers", "text-to-image"} and meta.tag_dict["license"] == "creativeml-openrail-m"
    assert meta.last_modified is not None and len(meta.files) == len(hub.repos[REPO].commits[sd].files)
    assert AnyModelRepoMetadataValidator.validate_json(meta.model_dump_json()) == meta
    fetch = HuggingFaceMetadataFetch(requests.Session(), hub.endpoint)
    assert fetch.from_id(REPO) == meta
    assert fetch.from_url(f"https://huggingface.co/{REPO}/tree/{sd}").sha == sd
    assert HuggingFaceMetadataFetch.from_json(meta.model_dump_json()) == meta


def test_resolve_source_dispatch(hub: FakeHub, sd: str) -> None:
    settings = AppSettings(hf_endpoint=hub.endpoint)
    r = resolve_source(parse_source(f"hf://{REPO}:fp16:unet"), settings)
    assert r.revision == sd and r.files[0].dest == "config.json"
    with pytest.raises(SourceError, match="needs no resolving"):
        resolve_source(parse_source("./local.safetensors"), settings)


def test_real_client_downloads_a_resolved_file(hub: FakeHub, sd: str, tmp_path: Path,
                                               sd_repo_files: dict[str, bytes]) -> None:
    r = resolve(hub, f"{REPO}:fp16:unet")
    weights = r.files[1]
    got = hf_hub_download(REPO, weights.path, revision=r.revision, endpoint=hub.endpoint,
                          cache_dir=tmp_path, token=False)
    data = Path(got).read_bytes()
    assert data == sd_repo_files[weights.path] and hashlib.sha256(data).hexdigest() == weights.sha256
    # Range support on the same URL the resolver handed out
    part = requests.get(weights.url, headers={"Range": "bytes=10-19"}, timeout=5)
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["X-Repo-Commit"] == sd and part.headers["X-Linked-Etag"] == f'"{weights.sha256}"'


@pytest.mark.parametrize(("text", "expected"), [
    (REPO, ["unet/diffusion_pytorch_model.fp16.safetensors"]),
    (f"{REPO}:fp16", ["unet/diffusion_pytorch_model.fp16.safetensors"]),
    (f"{REPO}:FP16:vae", ["vae/diffusion_pytorch_model.fp16.safetensors"]),
    (f"{REPO}::vae", ["vae/diffusion_pytorch_model.fp16.safetensors"]),
    (f"{REPO}:default:unet", ["unet/diffusion_pytorch_model.safetensors"]),
    (f"{REPO}:fp16:unet/diffusion_pytorch_model.fp16.safetensors", ["unet/diffusion_pytorch_model.fp16.safetensors"]),
    (f"{REPO}::v1-5-pruned-emaonly.safetensors", ["v1-5-pruned-emaonly.safetensors"]),
    (f"hf://{REPO}", ["unet/diffusion_pytorch_model.fp16.safetensors"]),
    (f"hf://{REPO}@main:default:vae", ["vae/diffusion_pytorch_model.safetensors"]),
])
def test_every_hf_form(hub: FakeHub, sd: str, text: str, expected: list[str]) -> None:
    source = parse_source(text)
    r = resolve_source(source, AppSettings(hf_endpoint=hub.endpoint))
    assert r.revision == sd and set(expected) <= set(paths(r))
    assert parse_source(str(r.source)) == source  # canonical round trip survives resolving
