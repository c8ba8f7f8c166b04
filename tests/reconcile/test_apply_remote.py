"""plan / apply / lock with remote sources, end to end through the CLI, against the fake hub
on 127.0.0.1 (huggingface_hub's real client talks to it)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import yaml

from reconciler.store.base import ModelRecordServiceBase
from reconciler.testing.models import write_lora_kohya
from tests.hub.conftest import hub, lora_repo_files, sd_repo_files  # noqa: F401 - fixtures

REPO = "tiny/sd"
TOKEN = "hf_secret_token_value_123"


@pytest.fixture
def remote_ws(ws, hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("RECONCILER_CIVITAI_ENDPOINT", hub.civitai_endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.delenv("CIVITAI_API_TOKEN", raising=False)
    ws.hub = hub
    return ws


def manifest(ws, *entries: str, name: str = "remote.yaml") -> Path:
    body = "\n".join(f"    - {e}" for e in entries)
    return ws.write_manifest(name, f"""
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {{name: team}}
        spec:
          models:
        {body}
        """.replace("\n        ", "\n"))


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".reconciler" not in p.parts}


def records(ws) -> dict:
    return {r.name: r for r in ws.records()}


def test_hf_diffusers_plan_apply_noop(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    sha = ws.hub.add_repo(REPO, sd_repo_files, tags=["stable-diffusion"], author="tiny")
    manifest(ws, "{name: sd, source: tiny/sd}")
    plan = ws.plan_json()
    (action,) = plan["actions"]
    paths = {f["path"] for f in action["files"]}
    assert action["action"] == "create"
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in paths, "fp16 is the default variant"
    assert "unet/diffusion_pytorch_model.safetensors" not in paths, "never other variants' weights"
    assert "text_encoder/model.safetensors" in paths, "a component without fp16 gets its default weights"
    assert any("text_encoder" in n for n in action["notes"]), action["notes"]
    assert not any(p.endswith((".msgpack", ".onnx")) for p in paths)
    expected = sum(len(sd_repo_files[p]) for p in paths)
    assert action["download_bytes"] == expected == plan["summary"]["download_bytes"]

    result = ws.apply()
    assert result.exit_code == 0, result.output
    rec = records(ws)["sd"]
    assert rec.source_revision == sha and rec.format.value == "diffusers" and rec.base.value == "sd-1"
    api = json.loads(rec.source_api_response)  # the hub's model info, as the hub sent it
    assert api["id"] == REPO and api["sha"] == sha and "stable-diffusion" in api["tags"]
    assert {s["rfilename"] for s in api["siblings"]} == set(sd_repo_files)
    model = ws.models_dir / rec.path
    for path in paths:
        assert (model / path).read_bytes() == sd_repo_files[path]
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests)).exit_code == 0
    assert not list((ws.models_dir / ".reconciler" / "tmp").iterdir())

    from reconciler.store.metadata import ModelMetadataStore

    store = ModelRecordServiceBase.from_db_file(ws.db_path)
    meta = ModelMetadataStore(store).get_metadata(rec.key)
    assert meta.id == REPO and "stable-diffusion" in meta.tags
    store.close()


def test_lock_offline_plan_and_byte_identical_machines(remote_ws, sd_repo_files, tmp_path):  # noqa: F811
    ws = remote_ws
    first = ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: sd, source: 'tiny/sd:fp16'}")
    result = ws.cli("lock", str(ws.manifests))
    assert result.exit_code == 0, result.output
    lock = yaml.safe_load((ws.root / "reconciler.lock").read_text())
    locked = lock["models"]["sd"]
    assert locked["revision"] == first and all(len(f["sha256"]) == 64 for f in locked["files"])

    # the branch moves on: the lock still pins the first commit
    changed = dict(sd_repo_files)
    changed["unet/diffusion_pytorch_model.fp16.safetensors"] = changed["unet/diffusion_pytorch_model.fp16.safetensors"][:-1] + b"!"
    ws.hub.add_repo(REPO, changed)

    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    for models in (machine_a, machine_b):
        assert ws.cli("apply", "-y", str(ws.manifests), models_dir=models).exit_code == 0
    assert tree_digest(machine_a) == tree_digest(machine_b)
    (unet,) = machine_a.rglob("unet/diffusion_pytorch_model.fp16.safetensors")
    assert unet.read_bytes() == sd_repo_files["unet/diffusion_pytorch_model.fp16.safetensors"]
    # installed from the lock, the record still gets the hub's answer, at the locked commit
    store = ModelRecordServiceBase.from_db_file(machine_a / ".reconciler" / "records.db")
    (rec,) = store.all_models()
    assert json.loads(rec.source_api_response)["sha"] == first
    store.close()

    # with the lock, plan needs no network: stop the hub and plan a third machine
    ws.hub.close()
    plan = json.loads(ws.cli("plan", "-o", "json", str(ws.manifests), models_dir=tmp_path / "c").stdout)
    assert plan["actions"][0]["action"] == "create" and plan["actions"][0]["download_bytes"] > 0
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests), models_dir=machine_a).exit_code == 0


def test_revision_move_replaces_keeping_key(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    first = ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.apply().exit_code == 0
    key = records(ws)["sd"].key
    changed = dict(sd_repo_files)
    changed["vae/diffusion_pytorch_model.fp16.safetensors"] += b""  # same bytes, new commit
    second = ws.hub.add_repo(REPO, changed)
    plan = ws.plan_json()
    (action,) = plan["actions"]
    assert action["action"] == "replace" and first in action["reason"] and second in action["reason"]
    assert ws.apply().exit_code == 0
    rec = records(ws)["sd"]
    assert rec.key == key and rec.source_revision == second


def test_repair_downloads_only_the_missing_file(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.apply().exit_code == 0
    rec = records(ws)["sd"]
    victim = ws.models_dir / rec.path / "vae" / "diffusion_pytorch_model.fp16.safetensors"
    victim.unlink()
    plan = ws.plan_json()
    (action,) = plan["actions"]
    assert action["action"] == "repair"
    assert [f["path"] for f in action["files"]] == ["vae/diffusion_pytorch_model.fp16.safetensors"]
    assert action["download_bytes"] == len(sd_repo_files["vae/diffusion_pytorch_model.fp16.safetensors"])
    ws.hub.server.reset_counters()
    gets_before = [r.path for r in ws.hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert ws.apply().exit_code == 0
    fetched = [r.path for r in ws.hub.requests if r.method == "GET" and "/resolve/" in r.path][len(gets_before):]
    weights = [p for p in fetched if not p.endswith("model_index.json")]  # the resolver reads the index
    assert weights and all(p.endswith("vae/diffusion_pytorch_model.fp16.safetensors") for p in weights)
    assert victim.read_bytes() == sd_repo_files["vae/diffusion_pytorch_model.fp16.safetensors"]
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests)).exit_code == 0


def test_apply_locked_refuses_a_changed_manifest(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    assert ws.cli("apply", "-y", "--locked", str(ws.manifests)).exit_code == 0
    manifest(ws, "{name: sd, source: 'tiny/sd:fp32'}")
    before = ws.snapshot()
    result = ws.cli("apply", "-y", "--locked", str(ws.manifests))
    assert result.exit_code == 1 and "--locked" in result.stderr and "'sd' changed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ws.snapshot() == before
    missing = ws.cli("--lock", str(ws.root / "none.lock"), "apply", "-y", "--locked", str(ws.manifests))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_lock_upgrade_re_resolves(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    first = ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: sd, source: tiny/sd}")
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    second = ws.hub.add_repo(REPO, sd_repo_files)
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    assert yaml.safe_load((ws.root / "reconciler.lock").read_text())["models"]["sd"]["revision"] == first
    assert ws.cli("lock", "--upgrade", "--target", "sd", str(ws.manifests)).exit_code == 0
    assert yaml.safe_load((ws.root / "reconciler.lock").read_text())["models"]["sd"]["revision"] == second


def test_single_file_and_civitai_and_url_sources(remote_ws, lora_repo_files, caplog):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo("tiny/lora", lora_repo_files)
    lora = write_lora_kohya(ws.root / "civ.safetensors", base="sdxl").read_bytes()
    ws.hub.add_civitai_version(62833, 4201, [{"name": "civ.safetensors", "bytes": lora, "primary": True}],
                               base_model="SDXL 1.0", token="civitai-secret-token")
    url_bytes = write_lora_kohya(ws.root / "u.safetensors", base="sd-1").read_bytes()
    ws.hub.server.add_file("/files/plain.safetensors", data=url_bytes, etag='"etag-plain"')
    manifest(ws,
             "{name: detail, source: 'tiny/lora::detail-tweaker.safetensors'}",
             "{name: civ, source: 'civitai:62833'}",
             f"{{name: plain, source: '{ws.hub.url('/files/plain.safetensors')}', sha256: "
             f"'{hashlib.sha256(url_bytes).hexdigest()}'}}")
    ws.runner.env = {"CIVITAI_API_TOKEN": "civitai-secret-token"}
    caplog.set_level(logging.DEBUG)
    result = ws.cli("-v", "apply", "-y", str(ws.manifests))
    assert result.exit_code == 0, result.output
    recs = records(ws)
    assert (ws.models_dir / recs["detail"].path).read_bytes() == lora_repo_files["detail-tweaker.safetensors"]
    assert (ws.models_dir / recs["civ"].path).read_bytes() == lora
    assert recs["civ"].base.value == "sdxl" and recs["civ"].source == "civitai:62833"
    assert recs["plain"].source_revision == '"etag-plain"'
    civ_api = json.loads(recs["civ"].source_api_response)  # Civitai's model-version answer
    assert civ_api["id"] == 62833 and civ_api["modelId"] == 4201 and civ_api["baseModel"] == "SDXL 1.0"
    assert civ_api["files"][0]["hashes"]["SHA256"].lower() == hashlib.sha256(lora).hexdigest()
    assert json.loads(recs["detail"].source_api_response)["id"] == "tiny/lora"
    assert recs["plain"].source_api_response is None, "a plain URL has no API"
    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    everything = (ws.db_path.read_bytes() + (ws.root / "reconciler.lock").read_bytes()
                  + result.output.encode() + caplog.text.encode())
    assert b"civitai-secret-token" not in everything, "a token is never stored, locked or logged"
    sent = [path for path, auth in ws.hub.authorizations() if "civitai-secret-token" in auth]
    assert sent and all(p.startswith("/civitai") for p in sent), "the token goes to the Civitai host only"


def test_gated_repo_without_token_is_a_clear_plan_error(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo(REPO, sd_repo_files)
    ws.hub.set_gated(REPO, TOKEN)
    manifest(ws, "{name: sd, source: tiny/sd}")
    result = ws.cli("plan", str(ws.manifests))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "remote.yaml:" in line and REPO in line and "token" in line.lower()
    ws.runner.env = {"HF_TOKEN": TOKEN}
    assert ws.apply().exit_code == 0
    assert TOKEN.encode() not in ws.db_path.read_bytes()


def test_hostile_listing_is_refused(remote_ws):
    ws = remote_ws
    ws.hub.add_raw_listing("evil/repo", ["model_index.json", "../../x.safetensors"])
    manifest(ws, "{name: evil, source: evil/repo}")
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 1 and "../../x.safetensors" in result.stderr
    assert records(ws) == {}  # nothing registered (whether or not the store file was created)


def test_unknown_repo_and_revision(remote_ws, sd_repo_files):  # noqa: F811
    ws = remote_ws
    ws.hub.add_repo(REPO, sd_repo_files)
    manifest(ws, "{name: a, source: nobody/none}")
    result = ws.cli("plan", str(ws.manifests))
    assert result.exit_code == 1 and "nobody/none" in result.stderr
    manifest(ws, "{name: a, source: tiny/sd, revision: v9}")
    result = ws.cli("plan", str(ws.manifests))
    assert result.exit_code == 1 and "v9" in result.stderr


def test_civitai_model_page_url_resolves_to_the_newest_version_and_the_lock_pins_it(remote_ws, tmp_path):
    """A pasted model-page URL without ?modelVersionId= takes the model's newest version; the
    plan says which, `lock` pins it, and apply installs exactly that version even after a newer one."""
    ws = remote_ws
    old = write_lora_kohya(ws.root / "old.safetensors", base="sd-1").read_bytes()
    new = write_lora_kohya(ws.root / "new.safetensors", base="sdxl").read_bytes()
    ws.hub.add_civitai_version(1001, 215796, [{"name": "old.safetensors", "bytes": old, "primary": True}],
                               base_model="SD 1.5", version_name="v1")
    ws.hub.add_civitai_version(1002, 215796, [{"name": "new.safetensors", "bytes": new, "primary": True}],
                               base_model="SDXL 1.0", version_name="v2")
    # pasted from civitai.com; resolved against the configured endpoint (the fake hub)
    manifest(ws, "{name: page, source: 'https://civitai.com/models/215796/some-name'}")

    result = ws.cli("plan", str(ws.manifests))
    assert result.exit_code == 0, result.output
    assert "civitai:model/215796" in result.stdout
    assert "Civitai model 215796 names no version: its newest, 1002 ('v2'), is used" in result.stdout

    assert ws.cli("lock", str(ws.manifests)).exit_code == 0
    locked = yaml.safe_load((ws.root / "reconciler.lock").read_text())["models"]["page"]
    assert locked["source"] == "civitai:model/215796" and locked["revision"] == "1002"
    assert [f["path"] for f in locked["files"]] == ["new.safetensors"]
    assert locked["files"][0]["sha256"] == hashlib.sha256(new).hexdigest()

    # a newer version appears: the lock still pins 1002, without the network for planning
    newest = write_lora_kohya(ws.root / "newest.safetensors", base="sd-1").read_bytes()
    ws.hub.add_civitai_version(1003, 215796, [{"name": "newest.safetensors", "bytes": newest, "primary": True}])
    plan = ws.plan_json()
    (action,) = plan["actions"]
    assert action["action"] == "create" and [f["path"] for f in action["files"]] == ["new.safetensors"]
    assert "locked at 1002" in action["notes"]

    result = ws.cli("apply", "-y", "--locked", str(ws.manifests))
    assert result.exit_code == 0, result.output
    rec = records(ws)["page"]
    assert rec.source == "civitai:model/215796" and rec.source_revision == "1002"
    assert (ws.models_dir / rec.path).read_bytes() == new and rec.base.value == "sdxl"
    assert json.loads(rec.source_api_response)["id"] == 1002, "the API's answer is the locked version's"
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests)).exit_code == 0

    # without the lock, a plan moves on to the newest version
    (ws.root / "reconciler.lock").unlink()
    plan = ws.plan_json()
    (action,) = plan["actions"]
    assert action["action"] == "replace" and "1002 -> 1003" in action["reason"]
    assert any("its newest, 1003" in n for n in action["notes"])
