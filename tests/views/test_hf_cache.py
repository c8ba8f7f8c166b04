"""The hf-cache view and SD.Next's Hugging Face cache cells: repos installed from the tests' hub
appear in huggingface_hub's cache layout, and diffusers / transformers load them offline."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from tests.hub.conftest import hub, lora_repo_files, sd_repo_files  # noqa: F401 - fixtures
from tests.hub.fakehub import git_blob_sha1
from tests.reconcile.test_apply_remote import remote_ws  # noqa: F401 - fixture

REPO = "tiny/sd"


def _manifest(ws, models: str, views: str) -> None:
    ws.write_manifest("m.yaml", f"""\
apiVersion: reconciler/v1
kind: ModelSet
metadata: {{name: team}}
spec:
  models:
{models}
{views}""")


def _view(name: str, app: str, root: str, link: str) -> str:
    return f"""---
apiVersion: reconciler/v1
kind: ModelView
metadata: {{name: {name}}}
spec: {{app: {app}, root: {root}, link: {link}}}
"""


def _apply(ws) -> None:
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 0, result.output


def _scan(root: Path):
    from huggingface_hub import scan_cache_dir

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = scan_cache_dir(root)
    assert info.warnings == []
    return info


@pytest.mark.parametrize("link", ["symlink", "hardlink", "copy"])
def test_hf_cache_view_layout_scan_prune_and_drift(remote_ws, sd_repo_files, lora_repo_files, link):  # noqa: F811
    ws = remote_ws
    sha = ws.hub.add_repo(REPO, sd_repo_files, author="tiny")
    lora_sha = ws.hub.add_repo("tiny/lora", lora_repo_files, author="tiny")
    models = ("    - {name: sd, source: tiny/sd}\n    - {name: ck, source: 'hf://tiny/sd::v1-5-pruned-emaonly.safetensors'}\n"
              "    - {name: lo, source: 'hf://tiny/lora'}\n")
    _manifest(ws, models, _view("hub", "hf-cache", "../cache", link))
    _apply(ws)
    root = ws.root / "cache"
    repo = root / "models--tiny--sd"
    assert (repo / "refs/main").read_bytes() == sha.encode()  # no trailing newline
    assert (root / "models--tiny--lora/refs/main").read_text() == lora_sha
    snap = repo / "snapshots" / sha
    expected = {"model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                "text_encoder/model.safetensors", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
                "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "v1-5-pruned-emaonly.safetensors"}
    assert {p.relative_to(snap).as_posix() for p in snap.rglob("*") if not p.is_dir()} == expected
    for path in expected:
        assert (snap / path).read_bytes() == sd_repo_files[path]
    lora_snap = root / "models--tiny--lora/snapshots" / lora_sha / "detail-tweaker.safetensors"
    assert lora_snap.read_bytes() == lora_repo_files["detail-tweaker.safetensors"]
    assert not list(root.rglob(".no_exist")) and not list(root.rglob("trees"))
    if link == "symlink":
        blobs = {p.name for p in (repo / "blobs").iterdir()}
        import hashlib
        assert hashlib.sha256(sd_repo_files["unet/config.json"]).hexdigest() not in blobs
        assert git_blob_sha1(sd_repo_files["unet/config.json"]) in blobs  # not LFS: the git blob sha1
        assert hashlib.sha256(sd_repo_files["text_encoder/model.safetensors"]).hexdigest() in blobs  # LFS: sha256
        target = os.readlink(snap / "unet/config.json")
        assert target == f"../../../blobs/{git_blob_sha1(sd_repo_files['unet/config.json'])}"
        assert os.readlink(snap / "model_index.json").startswith("../../blobs/")
    else:
        assert not (repo / "blobs").exists()
        assert not (snap / "unet/config.json").is_symlink()
    info = _scan(root)
    assert {r.repo_id for r in info.repos} == {"tiny/sd", "tiny/lora"}
    sd = next(r for r in info.repos if r.repo_id == "tiny/sd")
    (rev,) = sd.revisions
    assert rev.commit_hash == sha and rev.refs == frozenset({"main"}) and len(rev.files) == len(expected)
    assert ws.plan_json()["summary"]["view"] == 0
    # drift: a ref and a snapshot file deleted by hand come back
    (repo / "refs/main").unlink()
    (snap / "unet/config.json").unlink()
    _apply(ws)
    assert (repo / "refs/main").read_text() == sha and (snap / "unet/config.json").exists()
    # the checkpoint leaves the sets: its snapshot file goes, the shared ref stays; the lora repo goes
    _manifest(ws, "    - {name: sd, source: tiny/sd}\n", _view("hub", "hf-cache", "../cache", link))
    result = ws.cli("apply", "-y", "--max-deletions", "10", str(ws.manifests))
    assert result.exit_code == 0, result.output
    assert not (snap / "v1-5-pruned-emaonly.safetensors").exists() and (repo / "refs/main").exists()
    assert not (root / "models--tiny--lora").exists()
    assert {r.repo_id for r in _scan(root).repos} == {"tiny/sd"}


def test_diffusers_and_transformers_load_from_the_view_offline(remote_ws, sd_repo_files, monkeypatch):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo(REPO, sd_repo_files, author="tiny")
    _manifest(ws, "    - {name: sd, source: tiny/sd}\n", _view("hub", "hf-cache", "../cache", "symlink"))
    _apply(ws)
    root = ws.root / "cache"
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing answers there
    from diffusers import DiffusionPipeline
    from transformers import CLIPTextModel

    pipe = DiffusionPipeline.from_pretrained(REPO, cache_dir=root, variant="fp16")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    encoder = CLIPTextModel.from_pretrained(REPO, subfolder="text_encoder", cache_dir=root)
    assert encoder.config.model_type == "clip_text_model"
    assert {r.repo_id for r in _scan(root).repos} == {REPO}


def test_sdnext_reads_diffusers_from_its_hf_cache_folder(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    sha = ws.hub.add_repo(REPO, sd_repo_files, author="tiny")
    _manifest(ws, "    - {name: sd, source: tiny/sd}\n", _view("next", "sdnext", "../sdnext", "hardlink"))
    _apply(ws)
    cache = ws.root / "sdnext/models/Diffusers"
    assert (cache / "models--tiny--sd/refs/main").read_text() == sha
    assert (cache / f"models--tiny--sd/snapshots/{sha}/unet/config.json").read_bytes() == sd_repo_files["unet/config.json"]
    assert {r.repo_id for r in _scan(cache).repos} == {REPO}
    status = json.loads(ws.cli("status", "-o", "json").stdout)
    assert {v["state"] for v in status["views"]} == {"in_sync"}
    (cache / "mine.txt").write_text("mine")  # a user's file beside the tool's
    _manifest(ws, "", _view("next", "sdnext", "../sdnext", "hardlink"))
    result = ws.cli("apply", "-y", "--max-deletions", "10", "--allow-empty", str(ws.manifests))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in cache.iterdir()) == ["mine.txt"]


def test_a_local_model_has_no_hub_cache_layout(ws):
    from reconciler.testing.models import write_lora_kohya

    write_lora_kohya(ws.files / "l.safetensors")
    _manifest(ws, "    - {name: l, source: ../files/l.safetensors}\n", _view("hub", "hf-cache", "../cache", "symlink"))
    _apply(ws)
    plan = ws.plan_json()
    row = next(a for a in plan["actions"] if a["set"] == "view")
    assert any("not a Hugging Face repo" in n for n in row["notes"]), row
    assert not (ws.root / "cache").exists() or not any((ws.root / "cache").iterdir())
