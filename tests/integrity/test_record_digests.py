"""A record's sha256 states what was computed from the bytes on disk, never a value copied
from a listing; and the installer hands every expected sha256 to the downloader."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from reconciler.download import DownloadQueueService
from reconciler.testing.models import write_lora_kohya
from tests.integrity.helpers import assert_record_matches_disk, file_records, manifest, sha256


@pytest.fixture(scope="module")
def sd_repo_files():
    from tests.hub.repos import diffusers_repo_files

    return diffusers_repo_files()


@pytest.fixture
def handed_over(monkeypatch):
    """{dest: expected sha256} of every file the installer gives the download queue."""
    seen: dict[str, str | None] = {}
    submit = DownloadQueueService.submit_download_job

    def spy(self, job, start=True):
        for part in getattr(job, "parts", []):
            seen[str(part.dest_relpath)] = part.expected_sha256
        return submit(self, job, start)

    monkeypatch.setattr(DownloadQueueService, "submit_download_job", spy)
    return seen


def test_records_state_the_sha256_of_the_bytes_even_where_no_listing_gives_one(remote_ws, sd_repo_files, tmp_path):
    """An unlocked repo's git-stored files (configs, tokenizer) have no sha256 in the hub's
    listing, and a URL without `sha256:` has none either: the record still carries each
    file's sha256, computed from the bytes as they streamed."""
    ws = remote_ws
    ws.hub.add_repo("tiny/sd", sd_repo_files)
    url_bytes = write_lora_kohya(tmp_path / "u.safetensors", base="sd-1").read_bytes()
    ws.hub.server.add_file("/files/plain.safetensors", data=url_bytes, etag='"e1"')
    manifest(ws, "{name: sd, source: tiny/sd}",
             f"{{name: plain, source: '{ws.hub.url('/files/plain.safetensors')}'}}")
    result = ws.apply()
    assert result.exit_code == 0, result.output
    assert_record_matches_disk(ws, "sd")
    assert_record_matches_disk(ws, "plain")
    (sd,) = [r for r in ws.records() if r.name == "sd"]
    unlisted = [s.path for s in file_records(ws, sd.key) if not ws.hub.file("tiny/sd", s.path).lfs]
    assert "model_index.json" in unlisted and "scheduler/scheduler_config.json" in unlisted


def test_every_expected_sha256_is_handed_to_the_downloader(remote_ws, sd_repo_files, tmp_path, handed_over):
    """Lock a repo (LFS and git files), a URL with `sha256:` and a Civitai version: the
    download of each file is told the sha256 it must have, so a wrong byte fails the
    download itself, before the file leaves its `.part`."""
    ws = remote_ws
    ws.hub.add_repo("tiny/sd", sd_repo_files)
    url_bytes = write_lora_kohya(tmp_path / "u.safetensors", base="sd-1").read_bytes()
    ws.hub.server.add_file("/files/plain.safetensors", data=url_bytes, etag='"e1"')
    civ = write_lora_kohya(tmp_path / "c.safetensors", base="sdxl").read_bytes()
    ws.hub.add_civitai_version(62833, 4201, [{"name": "civ.safetensors", "bytes": civ, "primary": True}],
                               base_model="SDXL 1.0")
    manifest(ws, "{name: sd, source: tiny/sd}", "{name: civ, source: 'civitai:62833'}",
             f"{{name: plain, source: '{ws.hub.url('/files/plain.safetensors')}', sha256: '{sha256(url_bytes)}'}}")
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    locked = yaml.safe_load((ws.root / "reconciler.lock").read_text())["models"]["sd"]["files"]
    result = ws.apply()
    assert result.exit_code == 0, result.output

    expected = {f["dest"]: hashlib.sha256(sd_repo_files[f["path"]]).hexdigest() for f in locked}
    expected["civ.safetensors"] = sha256(civ)
    expected["plain.safetensors"] = sha256(url_bytes)
    assert handed_over == expected
    for name in ("sd", "civ", "plain"):
        assert_record_matches_disk(ws, name)


def test_a_repair_records_the_sha256_of_the_bytes_it_fetched(remote_ws, sd_repo_files):
    """A repaired file (a git-stored config the listing has no sha256 for, and an LFS
    weights file) gets the sha256 of its new bytes in the record."""
    ws = remote_ws
    ws.hub.add_repo("tiny/sd", sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.apply().exit_code == 0
    (rec,) = ws.records()
    root = ws.models_dir / rec.path
    (root / "unet" / "config.json").unlink()
    (root / "vae" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    plan = ws.plan_json()
    assert [a["action"] for a in plan["actions"]] == ["repair"]
    result = ws.apply()
    assert result.exit_code == 0, result.output
    assert_record_matches_disk(ws, "sd")
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests)).exit_code == 0
