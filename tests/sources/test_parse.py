"""parse_source: every accepted form, the canonical round trip, and every error."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.errors import SourceError
from reconciler.sources import (
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    URLModelSource,
    parse,
    parse_source,
)
from reconciler.taxonomy import ModelRepoVariant

FP16 = ModelRepoVariant.FP16


def hf(repo: str, **kw: object) -> HFModelSource:
    return HFModelSource(repo_id=repo, **kw)  # type: ignore[arg-type]


HF_FORMS = [
    ("owner/name", hf("owner/name")),
    ("owner/name:fp16", hf("owner/name", variant=FP16)),
    ("owner/name:FP16", hf("owner/name", variant=FP16)),
    ("owner/name:fp16:vae", hf("owner/name", variant=FP16, subfolder="vae")),
    ("owner/name::vae", hf("owner/name", subfolder="vae")),
    ("owner/name::vae/", hf("owner/name", subfolder="vae")),
    ("owner/name:", hf("owner/name")),
    ("owner/name:default", hf("owner/name", variant=ModelRepoVariant.Default)),
    ("owner/name:default:unet", hf("owner/name", variant=ModelRepoVariant.Default, subfolder="unet")),
    (
        "owner/name:fp16:path/to/model.safetensors",
        hf("owner/name", variant=FP16, file="path/to/model.safetensors"),
    ),
    ("owner/name::path/to/model.safetensors", hf("owner/name", file="path/to/model.safetensors")),
    ("owner/name::model.ckpt", hf("owner/name", file="model.ckpt")),
    ("owner/name::m.bin", hf("owner/name", file="m.bin")),
    ("owner/name::m.pt", hf("owner/name", file="m.pt")),
    ("owner/name::m.pth", hf("owner/name", file="m.pth")),
    ("owner/name::unet/model.onnx", hf("owner/name", file="unet/model.onnx")),
    ("owner/name::q4.GGUF", hf("owner/name", file="q4.GGUF")),
    ("owner/name::text_encoder/config.json", hf("owner/name", subfolder="text_encoder/config.json")),
    ("owner/name@main", hf("owner/name", revision="main")),
    ("owner/name@refs/pr/1:fp16:vae", hf("owner/name", revision="refs/pr/1", variant=FP16, subfolder="vae")),
    ("stabilityai/stable-diffusion-xl-base-1.0", hf("stabilityai/stable-diffusion-xl-base-1.0")),
    ("Org_1/model.v2-final", hf("Org_1/model.v2-final")),
    ("  owner/name  ", hf("owner/name")),
    ("hf://owner/name", hf("owner/name")),
    ("HF://owner/name", hf("owner/name")),
    ("hf://owner/name:fp16", hf("owner/name", variant=FP16)),
    ("hf://owner/name:fp16:vae", hf("owner/name", variant=FP16, subfolder="vae")),
    ("hf://owner/name::vae", hf("owner/name", subfolder="vae")),
    ("hf://owner/name::path/file.safetensors", hf("owner/name", file="path/file.safetensors")),
    (
        "hf://owner/name:fp32:path/file.safetensors",
        hf("owner/name", variant=ModelRepoVariant.FP32, file="path/file.safetensors"),
    ),
    ("hf://owner/name@v1.0:onnx", hf("owner/name", revision="v1.0", variant=ModelRepoVariant.ONNX)),
    ("hf://gpt2", hf("gpt2")),
    ("hf://gpt2:flax", hf("gpt2", variant=ModelRepoVariant.Flax)),
    ("hf://owner/name:openvino", hf("owner/name", variant=ModelRepoVariant.OpenVINO)),
]


@pytest.mark.parametrize(("text", "expected"), HF_FORMS, ids=[t for t, _ in HF_FORMS])
def test_hugging_face_forms(text: str, expected: HFModelSource, tmp_path: Path) -> None:
    assert parse_source(text, base_dir=tmp_path) == expected


CIVITAI_FORMS = [
    ("civitai:62833", 62833),
    ("CIVITAI:62833", 62833),
    ("civitai: 7", 7),
    ("https://civitai.com/models/4201?modelVersionId=130072", 130072),
    ("https://civitai.com/models/4201/?modelVersionId=5", 5),
    ("https://civitai.com/models/4201/realistic-vision?modelVersionId=130072", 130072),
    ("https://www.civitai.com/models/4201/realistic-vision?modelVersionId=130072&x=1", 130072),
    ("https://civitai.com/api/download/models/130072", 130072),
    ("https://civitai.com/api/download/models/130072?type=Model&format=SafeTensor", 130072),
    ("http://CIVITAI.com/api/v1/model-versions/9", 9),
]


@pytest.mark.parametrize(("text", "version"), CIVITAI_FORMS, ids=[t for t, _ in CIVITAI_FORMS])
def test_civitai_forms(text: str, version: int) -> None:
    assert parse_source(text) == CivitaiModelSource(version_id=version)


CIVITAI_MODEL_FORMS = [
    ("civitai:model/215796", 215796),
    ("CIVITAI:Model/ 7", 7),
    ("https://civitai.com/models/215796", 215796),
    ("https://civitai.com/models/215796/", 215796),
    ("https://civitai.com/models/215796/some-name", 215796),
    ("https://www.civitai.com/models/215796/some-name?x=1", 215796),
]


@pytest.mark.parametrize(("text", "model"), CIVITAI_MODEL_FORMS, ids=[t for t, _ in CIVITAI_MODEL_FORMS])
def test_civitai_model_page_forms_name_the_model(text: str, model: int) -> None:
    """A model page without ?modelVersionId= names the model (its newest version, chosen at resolve time)."""
    src = parse_source(text)
    assert src == CivitaiModelSource(model_id=model)
    assert str(src) == f"civitai:model/{model}" and parse_source(str(src)) == src


def test_civitai_source_takes_a_version_or_a_model() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        CivitaiModelSource()
    with pytest.raises(ValueError, match="exactly one"):
        CivitaiModelSource(version_id=1, model_id=2)


def test_civitai_download_url_token_becomes_access_token_and_is_hidden() -> None:
    src = parse_source("https://civitai.com/api/download/models/12?token=s3cret")
    assert isinstance(src, CivitaiModelSource)
    assert src.version_id == 12 and src.access_token == "s3cret"
    for shown in (str(src), repr(src), src.model_dump_json(), str(src.model_dump())):
        assert "s3cret" not in shown


def test_configured_civitai_endpoints() -> None:
    hosts = ["127.0.0.1:8123", "http://mirror.local/civitai/"]
    assert parse_source("http://127.0.0.1:8123/api/download/models/5", civitai_hosts=hosts) == (
        CivitaiModelSource(version_id=5)
    )
    assert parse_source("http://mirror.local/civitai/models/1?modelVersionId=6", civitai_hosts=hosts) == (
        CivitaiModelSource(version_id=6)
    )
    # same host, outside the prefix: an ordinary URL
    assert isinstance(
        parse_source("http://mirror.local/other/x.safetensors", civitai_hosts=hosts), URLModelSource
    )
    # without the configuration it is just a URL
    assert parse_source("http://127.0.0.1:8123/api/download/models/5") == URLModelSource(
        url="http://127.0.0.1:8123/api/download/models/5"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/loras/my-lora.safetensors",
        "http://127.0.0.1:8000/x.ckpt?sig=abc",
        "https://huggingface.co/owner/name/resolve/main/model.safetensors",
        "HTTPS://Example.com/A",
    ],
)
def test_urls(url: str) -> None:
    assert parse_source(url) == URLModelSource(url=url)


def test_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "manifests"
    (base / "owner").mkdir(parents=True)
    (base / "owner" / "name").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cases = {
        "/abs/model.safetensors": Path("/abs/model.safetensors"),
        "/abs/../abs/./m": Path("/abs/m"),
        "./x.safetensors": base / "x.safetensors",
        "../x.safetensors": tmp_path / "x.safetensors",
        "./files/sd15/": base / "files" / "sd15",
        ".": base,
        "..": tmp_path,
        "~/models/x.ckpt": tmp_path / "home" / "models" / "x.ckpt",
        "owner/name": base / "owner" / "name",  # exists on disk: local wins over the repo id
        "model.safetensors": base / "model.safetensors",  # no '/', no ':'
        "files/x.safetensors": base / "files" / "x.safetensors",  # weights file name, not a repo
        "a/b/c": base / "a" / "b" / "c",  # more than one '/'
        "file:///srv/m%20x.safetensors": Path("/srv/m x.safetensors"),
    }
    for text, path in cases.items():
        assert parse_source(text, base_dir=base) == LocalModelSource(path=path), text


def test_local_relative_defaults_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_source("./m.safetensors") == LocalModelSource(path=tmp_path / "m.safetensors")


@pytest.mark.parametrize("text", ["C:\\models\\x.safetensors", "d:/models/x", "\\\\server\\share\\m.ckpt"])
def test_windows_paths_are_local_and_kept_verbatim(text: str, tmp_path: Path) -> None:
    src = parse_source(text, base_dir=tmp_path)
    assert isinstance(src, LocalModelSource)
    assert str(src) == str(Path(text))


ERRORS = [
    ("", "source is empty"),
    ("   ", "source is empty"),
    ("a:b:c:d", "too many ':' parts"),
    ("owner/name:fp16:vae:x", "too many ':' parts"),
    ("civitai:", "positive integer"),
    ("civitai:abc", "positive integer"),
    ("civitai:0", "positive integer"),
    ("civitai:-3", "positive integer"),
    ("civitai:1.5", "positive integer"),
    ("ftp://example.com/x.safetensors", "unsupported URL scheme 'ftp'"),
    ("s3://bucket/x", "unsupported URL scheme 's3'"),
    ("https://", "not a valid http(s) URL"),
    ("civitai:model/", "model id must be a positive integer"),
    ("civitai:model/0", "model id must be a positive integer"),
    ("civitai:model/x", "model id must be a positive integer"),
    ("https://civitai.com/models/4201?modelVersionId=abc", "positive integer"),
    ("https://civitai.com/images/77", "not a Civitai model-version URL"),
    ("own er/name", "invalid Hugging Face repo id"),
    ("owner/na$me", "invalid Hugging Face repo id"),
    ("-owner/name", "invalid Hugging Face repo id"),
    ("owner/name.", "invalid Hugging Face repo id"),
    ("owner/na--me", "invalid Hugging Face repo id"),
    ("owner/" + "n" * 97, "invalid Hugging Face repo id"),
    ("owner/name:fp8", "unknown variant 'fp8' (allowed: default, fp16, fp32, onnx, openvino, flax)"),
    ("owner/name::../etc", "plain relative path"),
    ("owner/name::a//b", "plain relative path"),
    ("owner/name@", "empty revision"),
    ("owner/name@bad rev", "invalid revision"),
    ("name:fp16", "not an 'owner/name' repo id"),
    ("hf://", "missing repo id"),
    ("hf://a/b/c", "must be 'owner/name'"),
    ("hf://owner/name:fp16:vae:x", "too many ':' parts"),
    ("own\ter/x", "control characters"),
]


@pytest.mark.parametrize(("text", "needle"), ERRORS, ids=[repr(e[0]) for e in ERRORS])
def test_errors(text: str, needle: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        parse_source(text, base_dir=tmp_path)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    if text.strip():
        assert repr(text) in message  # the message quotes what was given


def test_non_string_is_an_error() -> None:
    with pytest.raises(SourceError, match="must be a string"):
        parse_source(123)  # type: ignore[arg-type]


def test_source_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_source("a:b:c:d")


# --- canonical form and round trip ----------------------------------------------------------


def test_canonical_strings() -> None:
    assert str(hf("owner/name")) == "hf://owner/name"
    assert str(hf("owner/name", variant=FP16, subfolder="vae")) == "hf://owner/name:fp16:vae"
    assert str(hf("owner/name", subfolder="vae")) == "hf://owner/name::vae"
    assert str(hf("owner/name", file="p/f.safetensors")) == "hf://owner/name::p/f.safetensors"
    assert str(hf("owner/name", revision="abc123", variant=FP16)) == "hf://owner/name@abc123:fp16"
    assert str(CivitaiModelSource(version_id=62833)) == "civitai:62833"
    assert str(CivitaiModelSource(model_id=215796)) == "civitai:model/215796"
    assert str(URLModelSource(url="https://e.com/x")) == "https://e.com/x"
    assert str(LocalModelSource(path=Path("/srv/x.safetensors"))) == "/srv/x.safetensors"
    assert parse is parse_source


def _all_sources(tmp_path: Path) -> list[object]:
    """An exhaustive cross product of the source fields (within a small alphabet)."""
    out: list[object] = []
    repos = ["owner/name", "a.b/c-d_e", "gpt2"]
    variants = [None, *ModelRepoVariant]
    paths: list[tuple[str | None, str | None]] = [
        (None, None),
        ("vae", None),
        ("a/b", None),
        (None, "m.safetensors"),
        (None, "unet/m.ckpt"),
    ]
    for repo, variant, (sub, file), rev in itertools.product(
        repos, variants, paths, [None, "main", "refs/pr/3"]
    ):
        out.append(HFModelSource(repo_id=repo, variant=variant, subfolder=sub, file=file, revision=rev))
    out += [CivitaiModelSource(version_id=v) for v in (1, 62833, 10**12)]
    out += [CivitaiModelSource(model_id=m) for m in (1, 215796)]
    out += [URLModelSource(url=u) for u in ("https://e.com/x", "http://127.0.0.1:9/a?b=c#d")]
    out += [
        LocalModelSource(path=p) for p in (tmp_path / "x.safetensors", tmp_path / "dir name" / "m", Path("/"))
    ]
    return out


def test_round_trip_exhaustive(tmp_path: Path) -> None:
    sources = _all_sources(tmp_path)
    assert len(sources) > 300
    for src in sources:
        text = str(src)
        assert parse_source(text, base_dir=tmp_path / "elsewhere") == src, text
        assert str(parse_source(text)) == text


def test_round_trip_of_every_parsed_form(tmp_path: Path) -> None:
    texts = [t for t, _ in HF_FORMS] + [t for t, _ in CIVITAI_FORMS] + [t for t, _ in CIVITAI_MODEL_FORMS]
    texts += ["./a.safetensors", "https://e.com/x"]
    for text in texts:
        src = parse_source(text, base_dir=tmp_path)
        assert parse_source(str(src), base_dir=tmp_path / "other") == src, text


def test_tokens_never_shown_and_excluded_from_dumps() -> None:
    for src in (
        HFModelSource(repo_id="o/n", access_token="hf_SECRET"),
        URLModelSource(url="https://e.com/x", access_token="hf_SECRET"),
        CivitaiModelSource(version_id=1, access_token="hf_SECRET"),
        CivitaiModelSource(model_id=1, access_token="hf_SECRET"),
    ):
        for shown in (str(src), repr(src), src.model_dump_json(), str(src.model_dump()), f"{src!s}"):
            assert "hf_SECRET" not in shown
        # a token does not change the canonical string
        assert parse_source(str(src)) == src.model_copy(update={"access_token": None})


def test_sources_are_frozen_and_hashable() -> None:
    src = hf("o/n")
    with pytest.raises(ValidationError, match="frozen"):
        src.repo_id = "x/y"  # type: ignore[misc]
    assert len({src, hf("o/n")}) == 1


def test_hf_source_refuses_file_and_subfolder_together() -> None:
    with pytest.raises(ValueError, match="not both"):
        HFModelSource(repo_id="o/n", subfolder="vae", file="x.safetensors")


def test_discriminated_union_from_dict() -> None:
    from pydantic import TypeAdapter

    from reconciler.sources import ModelSource

    adapter: TypeAdapter[object] = TypeAdapter(ModelSource)
    src = hf("o/n", variant=FP16, subfolder="vae")
    assert adapter.validate_python(src.model_dump()) == src
    assert adapter.validate_python({"type": "civitai", "version_id": 3}) == CivitaiModelSource(version_id=3)


def test_relative_path_existence_check_uses_base_dir(tmp_path: Path) -> None:
    (tmp_path / "foo").mkdir()
    (tmp_path / "foo" / "bar").write_bytes(b"")
    assert isinstance(parse_source("foo/bar", base_dir=tmp_path), LocalModelSource)
    assert isinstance(parse_source("foo/bar", base_dir=tmp_path / "foo"), HFModelSource)
    assert os.path.isabs(str(parse_source("foo/bar", base_dir=tmp_path)))
