"""Every kind of remote file, served with one byte flipped (same size), is refused by
`apply`: nothing is registered, nothing lands where the model goes, and the message says
which file failed its sha256 check.  The expected sha256 comes from the hub listing (LFS),
the lock file (a git-stored file), the manifest (a URL) or Civitai's API."""

from __future__ import annotations

import hashlib
import json

import pytest

from reconciler.testing.models import write_lora_kohya
from tests.integrity.helpers import (
    assert_record_matches_disk,
    manifest,
    model_files,
    record_names,
    sha256,
    tamper,
)


def refused(ws, result, name: str, file_name: str, expected: str) -> None:
    """apply exited 1, said which file of which model failed its sha256, changed nothing."""
    assert result.exit_code == 1, result.output
    text = result.output
    assert name in text and file_name in text, text
    assert "sha256 mismatch" in text and expected in text, text
    assert name not in record_names(ws), "a tampered model is never registered"
    assert model_files(ws) == [], "nothing lands where a model goes"
    # the downloader itself refused the bytes: they never left their .part (which is gone),
    # not even into the staging folder under .reconciler/tmp
    leftovers = [p for p in ws.models_dir.rglob("*") if p.name.startswith(file_name.rsplit("/", 1)[-1])]
    assert leftovers == [], leftovers


def test_hf_lfs_file_with_a_flipped_byte_is_refused(remote_ws, lora_repo_files):
    ws = remote_ws
    ws.hub.add_repo("tiny/lora", lora_repo_files)
    listed = ws.hub.file("tiny/lora", "detail-tweaker.safetensors")
    assert listed.lfs, "the weights are an LFS file: the listing gives their sha256"
    tamper(listed.route)
    manifest(ws, "{name: detail, source: 'tiny/lora::detail-tweaker.safetensors'}")
    result = ws.apply()
    refused(ws, result, "detail", "detail-tweaker.safetensors", listed.sha256)
    # the same bytes, served right, install: the refusal was the flipped byte
    listed.route.data = lora_repo_files["detail-tweaker.safetensors"]
    assert ws.apply().exit_code == 0
    assert_record_matches_disk(ws, "detail")


def test_git_stored_file_of_a_locked_repo_with_a_flipped_byte_is_refused(remote_ws, sd_repo_files):
    ws = remote_ws
    ws.hub.add_repo("tiny/sd", sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    lock = ws.root / "reconciler.lock"
    import yaml

    locked = {f["path"]: f for f in yaml.safe_load(lock.read_text())["models"]["sd"]["files"]}
    path = "scheduler/scheduler_config.json"
    listed = ws.hub.file("tiny/sd", path)
    assert not listed.lfs, "a plain git file: the hub lists no sha256 for it, the lock does"
    assert locked[path]["sha256"] == sha256(sd_repo_files[path])
    # 1000 -> 1001 train timesteps: still valid JSON, still a scheduler, silently different
    at = listed.route.data.index(b"1000") + 3
    tamper(listed.route, at)
    assert json.loads(listed.route.data)["num_train_timesteps"] == 1001
    result = ws.apply()
    refused(ws, result, "sd", path, locked[path]["sha256"])


def test_url_with_a_manifest_sha256_and_a_flipped_byte_is_refused(remote_ws, tmp_path):
    ws = remote_ws
    data = write_lora_kohya(tmp_path / "u.safetensors", base="sd-1").read_bytes()
    route = ws.hub.server.add_file("/files/plain.safetensors", data=data, etag='"plain"')
    tamper(route)
    expected = sha256(data)
    manifest(ws, f"{{name: plain, source: '{ws.hub.url('/files/plain.safetensors')}', sha256: '{expected}'}}")
    result = ws.apply()
    refused(ws, result, "plain", "plain.safetensors", expected)


def test_civitai_file_with_a_flipped_byte_is_refused(remote_ws, tmp_path):
    ws = remote_ws
    data = write_lora_kohya(tmp_path / "civ.safetensors", base="sdxl").read_bytes()
    info = ws.hub.add_civitai_version(62833, 4201, [{"name": "civ.safetensors", "bytes": data, "primary": True}],
                                      base_model="SDXL 1.0")
    expected = info["files"][0]["hashes"]["SHA256"].lower()
    assert expected == sha256(data)
    tamper(ws.hub.civitai_file_route(62833))
    manifest(ws, "{name: civ, source: 'civitai:62833'}")
    result = ws.apply()
    refused(ws, result, "civ", "civ.safetensors", expected)


def test_civitai_api_hash_that_differs_from_the_bytes_is_refused(remote_ws, tmp_path):
    """The bytes are what the server has, but the API's SHA256 names other bytes."""
    ws = remote_ws
    data = write_lora_kohya(tmp_path / "civ.safetensors", base="sd-1").read_bytes()
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    ws.hub.add_civitai_version(777, 77, [{"name": "civ.safetensors", "bytes": data, "primary": True}],
                               sha256_override={"civ.safetensors": wrong})
    manifest(ws, "{name: civ, source: 'civitai:777'}")
    result = ws.apply()
    refused(ws, result, "civ", "civ.safetensors", wrong)


@pytest.fixture
def lora_repo_files():
    from tests.hub.repos import single_file_repo_files

    return single_file_repo_files()


@pytest.fixture(scope="module")
def sd_repo_files():
    from tests.hub.repos import diffusers_repo_files

    return diffusers_repo_files()


def test_git_stored_file_of_an_unlocked_repo_is_checked_against_its_git_blob_id(remote_ws, sd_repo_files):
    """Without a lock the hub lists no sha256 for a plain git file, but it lists the file's
    git blob id: a flipped byte is refused by that (at apply, and at lock time, so a lock
    never pins bytes the listing disowns)."""
    ws = remote_ws
    ws.hub.add_repo("tiny/sd", sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    path = "scheduler/scheduler_config.json"
    listed = ws.hub.file("tiny/sd", path)
    tamper(listed.route, listed.route.data.index(b"1000") + 3)
    result = ws.apply()
    assert result.exit_code == 1, result.output
    assert "sd" in result.output and path in result.output and "git blob mismatch" in result.output, result.output
    assert listed.blob_id in result.output
    assert record_names(ws) == set() and model_files(ws) == []
    locked = ws.cli("lock", str(ws.manifests))
    assert locked.exit_code == 1 and path in locked.output and "nothing locked" in locked.output, locked.output
    assert not (ws.root / "reconciler.lock").exists() or "scheduler" not in (ws.root / "reconciler.lock").read_text()
