"""plan/apply end to end on local sources, through the real CLI and the SQLite store."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from reconciler.store.base import ModelRecordServiceBase
from reconciler.testing.models import write_lora_kohya, write_main_checkpoint, write_vae_checkpoint


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(ws) -> list:
    return ws.records()


@pytest.fixture
def studio(ws):
    """Two local models declared by the set 'studio'."""
    write_main_checkpoint(ws.files / "sd15.safetensors", base="sd-1")
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    ws.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - name: base15
              source: ../files/sd15.safetensors
              description: the base
            - name: house-vae
              source: ../files/vae.safetensors
              tags: [house]
        """)
    return ws


def test_create_then_noop(studio):
    plan = studio.plan_json()
    assert [a["action"] for a in plan["actions"]] == ["create", "create"]
    assert plan["summary"]["create"] == 2 and plan["summary"]["noop"] == 0
    assert not studio.models_dir.exists(), "plan must not create anything"

    result = studio.apply()
    assert result.exit_code == 0, result.output
    assert "+ create   studio/base15" in result.stdout, "apply -y shows the plan it runs"
    assert result.stdout.rstrip().endswith("Apply complete: 2 created.")
    main = studio.models_dir / "sd-1" / "main" / "base15.safetensors"
    vae = studio.models_dir / "sd-1" / "vae" / "house-vae.safetensors"
    assert sha256(main) == sha256(studio.files / "sd15.safetensors")
    assert sha256(vae) == sha256(studio.files / "vae.safetensors")
    recs = {r.name: r for r in records(studio)}
    assert recs["base15"].managed_by == "studio" and recs["base15"].path == "sd-1/main/base15.safetensors"
    assert recs["house-vae"].tags == ["house"] and len(recs["base15"].key) == 32
    assert not list((studio.models_dir / ".reconciler" / "tmp").iterdir()), "no staging leftovers"

    again = studio.cli("plan", "--detailed-exitcode", str(studio.manifests))
    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout


def test_detailed_exitcode_two_when_changes(studio):
    result = studio.cli("plan", "--detailed-exitcode", str(studio.manifests))
    assert result.exit_code == 2


def test_inplace_registers_without_copy_and_prune_keeps_file(ws):
    src = ws.files / "lora.safetensors"
    write_lora_kohya(src, base="sd-1")
    ws.write_manifest("m.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: s}
        spec:
          models:
            - {name: my-lora, source: ../files/lora.safetensors, inplace: true}
        """)
    assert ws.apply().exit_code == 0
    (rec,) = records(ws)
    assert rec.inplace and rec.path == str(src) and rec.type.value == "lora"
    assert not (ws.models_dir / "sd-1").exists()

    ws.write_manifest("m.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: s}
        spec:
          models:
            - {name: other, source: ../files/lora.safetensors, inplace: true}
        """)
    plan = ws.plan_json()
    (rename,) = plan["actions"]
    assert rename["action"] == "update" and "renamed from 'my-lora'" in rename["reason"]
    assert ws.apply().exit_code == 0
    (renamed,) = records(ws)
    assert renamed.key == rec.key and renamed.name == "other"

    ws.write_manifest("m.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: s}
        spec:
          models:
            - {name: keep, source: ../files/keep.safetensors}
        """)
    write_lora_kohya(ws.files / "keep.safetensors", base="sdxl")
    plan = ws.plan_json()
    assert {a["name"]: a["action"] for a in plan["actions"]} == {"keep": "create", "other": "delete"}
    assert ws.apply().exit_code == 0
    assert src.exists(), "an in-place file is never deleted"
    assert [r.name for r in records(ws)] == ["keep"]


def test_repair_missing_and_changed_files(studio):
    assert studio.apply().exit_code == 0
    main = studio.models_dir / "sd-1" / "main" / "base15.safetensors"
    vae = studio.models_dir / "sd-1" / "vae" / "house-vae.safetensors"
    main.unlink()
    data = bytearray(vae.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes, new mtime
    vae.write_bytes(bytes(data))
    os.utime(vae, ns=(vae.stat().st_atime_ns, vae.stat().st_mtime_ns + 5_000_000_000))

    plan = studio.plan_json()
    actions = {a["name"]: a for a in plan["actions"]}
    assert actions["base15"]["action"] == "repair" and "missing" in actions["base15"]["reason"]
    assert actions["house-vae"]["action"] == "repair" and "changed" in actions["house-vae"]["reason"]
    status = json.loads(studio.cli("status", "-o", "json").stdout)
    assert {m["name"]: m["state"] for m in status["models"]} == {"base15": "missing", "house-vae": "drifted"}

    assert studio.apply().exit_code == 0
    assert sha256(main) == sha256(studio.files / "sd15.safetensors")
    assert sha256(vae) == sha256(studio.files / "vae.safetensors")
    assert studio.cli("plan", "--detailed-exitcode", str(studio.manifests)).exit_code == 0


def test_noop_plan_does_not_rehash_unchanged_files(studio, monkeypatch):
    assert studio.apply().exit_code == 0
    import reconciler.probe.hashing as hashing
    import reconciler.reconcile.observe as observe
    import reconciler.reconcile.planner as planner

    calls = []

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return wrapper

    for module in (hashing, observe, planner):
        for name in ("sha256_file", "fast_hash"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    plan = studio.plan_json()
    assert plan["summary"]["noop"] == 2
    assert calls == [], f"a no-op plan hashed files: {calls}"


def test_update_changes_record_only(studio):
    assert studio.apply().exit_code == 0
    main = studio.models_dir / "sd-1" / "main" / "base15.safetensors"
    before = main.stat().st_mtime_ns
    text = (studio.manifests / "studio.yaml").read_text().replace("the base", "the new base")
    (studio.manifests / "studio.yaml").write_text(text)
    plan = studio.plan_json()
    (upd,) = [a for a in plan["actions"] if a["action"] != "noop"]
    assert upd["action"] == "update" and "description" in upd["reason"]
    assert studio.apply().exit_code == 0
    assert {r.name: r.description for r in records(studio)}["base15"] == "the new base"
    assert main.stat().st_mtime_ns == before


def test_replace_when_source_changes(studio):
    assert studio.apply().exit_code == 0
    (old_key,) = [r.key for r in records(studio) if r.name == "base15"]
    write_main_checkpoint(studio.files / "sd15-v2.safetensors", base="sd-1", variant="inpaint")
    text = (studio.manifests / "studio.yaml").read_text().replace("sd15.safetensors", "sd15-v2.safetensors")
    (studio.manifests / "studio.yaml").write_text(text)
    plan = studio.plan_json()
    (rep,) = [a for a in plan["actions"] if a["action"] != "noop"]
    assert rep["action"] == "replace" and "source changed" in rep["reason"]
    assert studio.apply().exit_code == 0
    rec = {r.name: r for r in records(studio)}["base15"]
    assert rec.key == old_key, "replace keeps the record's key"
    assert rec.variant.value == "inpaint"
    assert sha256(studio.models_dir / rec.path) == sha256(studio.files / "sd15-v2.safetensors")


def test_replace_when_local_source_bytes_change(studio):
    assert studio.apply().exit_code == 0
    write_main_checkpoint(studio.files / "sd15.safetensors", base="sd-1", variant="depth")
    plan = studio.plan_json()
    (rep,) = [a for a in plan["actions"] if a["action"] != "noop"]
    assert rep["action"] == "replace" and "source files changed" in rep["reason"]


def test_prune_never_touches_unmanaged_or_unread_sets(studio):
    assert studio.apply().exit_code == 0
    # a model registered by hand (unmanaged) and one managed by a set we do not read
    from reconciler.install.service import ModelInstallService
    from reconciler.settings import load_settings

    hand = studio.files / "hand.safetensors"
    write_lora_kohya(hand, base="sd-1")
    other = studio.files / "other.safetensors"
    write_lora_kohya(other, base="sdxl")
    store = ModelRecordServiceBase.from_db_file(studio.db_path)
    installer = ModelInstallService(load_settings(models_dir=studio.models_dir), store)
    installer.install_path(hand, {"name": "by-hand"})
    installer.install_path(other, {"name": "elsewhere", "managed_by": "another-team"})
    store.close()

    studio.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - {name: base15, source: ../files/sd15.safetensors, description: the base}
        """)
    plan = studio.plan_json()
    deletes = [a["name"] for a in plan["actions"] if a["action"] == "delete"]
    assert deletes == ["house-vae"]
    assert studio.apply().exit_code == 0
    names = {r.name for r in records(studio)}
    assert names == {"base15", "by-hand", "elsewhere"}
    assert not (studio.models_dir / "sd-1" / "vae").exists(), "the pruned model's files go, empty folders too"

    no_prune = studio.plan_json(extra=("--no-prune",))
    assert all(a["action"] != "delete" for a in no_prune["actions"])


def test_empty_set_needs_allow_empty(studio):
    assert studio.apply().exit_code == 0
    studio.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models: []
        """)
    before = studio.snapshot()
    plan = studio.cli("plan", str(studio.manifests))
    assert plan.exit_code == 0 and "--allow-empty" in plan.stdout
    result = studio.apply()
    assert result.exit_code == 1
    assert "--allow-empty" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert studio.snapshot() == before and len(records(studio)) == 2
    assert studio.apply(extra=("--allow-empty",)).exit_code == 0
    assert records(studio) == []


def test_max_deletions_guard(studio):
    assert studio.apply().exit_code == 0
    studio.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - {name: keep, source: ../files/vae.safetensors}
        """)
    before = len(records(studio))
    result = studio.apply(extra=("--max-deletions", "1"))
    assert result.exit_code == 1 and "--max-deletions 2" in result.stderr
    assert len(records(studio)) == before
    assert studio.apply(extra=("--max-deletions", "2")).exit_code == 0
    assert {r.name for r in records(studio)} == {"keep"}


def test_target_limits_the_plan(studio):
    plan = studio.plan_json(extra=("--target", "house-vae"))
    assert [a["name"] for a in plan["actions"]] == ["house-vae"]
    bad = studio.cli("plan", "--target", "nope", str(studio.manifests))
    assert bad.exit_code == 1 and "nope" in bad.stderr


def test_adopt_files_already_in_place(studio):
    dest = studio.models_dir / "sd-1" / "main" / "base15.safetensors"
    dest.parent.mkdir(parents=True)
    dest.write_bytes((studio.files / "sd15.safetensors").read_bytes())
    plan = studio.plan_json()
    assert {a["name"]: a["action"] for a in plan["actions"]} == {"base15": "adopt", "house-vae": "create"}
    assert studio.apply().exit_code == 0
    assert studio.cli("plan", "--detailed-exitcode", str(studio.manifests)).exit_code == 0


def test_adopt_unmanaged_record(studio):
    from reconciler.install.service import ModelInstallService
    from reconciler.settings import load_settings

    studio.models_dir.mkdir()
    store = ModelRecordServiceBase.from_db_file(studio.db_path)
    installer = ModelInstallService(load_settings(models_dir=studio.models_dir), store)
    installer.start()
    key = installer.install_path(studio.files / "vae.safetensors", {"name": "house-vae"})
    store.close()
    plan = studio.plan_json()
    adopt = [a for a in plan["actions"] if a["action"] == "adopt"]
    assert [a["key"] for a in adopt] == [key]
    assert studio.apply().exit_code == 0
    rec = {r.name: r for r in records(studio)}["house-vae"]
    assert rec.key == key and rec.managed_by == "studio" and rec.tags == ["house"]


def test_existing_foreign_file_is_not_overwritten(studio):
    dest = studio.models_dir / "sd-1" / "main" / "base15.safetensors"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"my own bytes that no record owns")
    plan = studio.plan_json()
    action = {a["name"]: a for a in plan["actions"]}["base15"]
    assert action["action"] == "create" and any("refuse" in n for n in action["notes"])
    result = studio.apply()
    assert result.exit_code == 1 and "refusing to overwrite" in result.stderr
    assert "Apply finished with errors: 1 created; 1 failed." in result.stdout
    assert dest.read_bytes() == b"my own bytes that no record owns"
    assert {r.name for r in records(studio)} == {"house-vae"}, "independent actions still run"


def test_declared_sha256_is_verified(studio):
    text = (studio.manifests / "studio.yaml").read_text().replace(
        "description: the base", "description: the base\n      sha256: '" + "0" * 64 + "'")
    (studio.manifests / "studio.yaml").write_text(text)
    result = studio.apply()
    assert result.exit_code == 1 and "sha256 mismatch" in result.stderr
    assert not (studio.models_dir / "sd-1" / "main" / "base15.safetensors").exists()
    good = text.replace("0" * 64, sha256(studio.files / "sd15.safetensors"))
    (studio.manifests / "studio.yaml").write_text(good)
    assert studio.apply().exit_code == 0


def test_disk_space_refused_up_front(studio, monkeypatch):
    import reconciler.reconcile.apply as apply_mod
    import reconciler.reconcile.planner as planner

    monkeypatch.setattr(planner, "free_space", lambda path: 1000)
    monkeypatch.setattr(apply_mod, "free_space", lambda path: 1000)
    plan = studio.cli("plan", str(studio.manifests))
    assert "1000 bytes free" in plan.stdout
    result = studio.apply()
    assert result.exit_code == 1
    assert "bytes free" in result.stderr and "writes" in result.stderr
    assert records(studio) == []


def test_second_apply_waits_then_fails_on_lock(studio, monkeypatch):
    from filelock import FileLock

    monkeypatch.setenv("RECONCILER_APPLY_LOCK_TIMEOUT", "0.3")
    (studio.models_dir / ".reconciler").mkdir(parents=True)
    with FileLock(str(studio.models_dir / ".reconciler" / "apply.lock")):
        result = studio.apply()
    assert result.exit_code == 1 and "another apply holds" in result.stderr
    assert studio.apply().exit_code == 0


def test_saved_plan_applies_and_is_refused_when_stale(studio):
    planfile = studio.root / "plan.json"
    assert studio.cli("plan", "--out", str(planfile), str(studio.manifests)).exit_code == 0
    result = studio.cli("apply", "-y", str(planfile))
    assert result.exit_code == 0, result.output
    assert len(records(studio)) == 2

    # a second saved plan, then the state moves on: the plan is refused, nothing changes
    studio.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - {name: base15, source: ../files/sd15.safetensors, description: changed}
            - {name: house-vae, source: ../files/vae.safetensors, tags: [house]}
        """)
    assert studio.cli("plan", "--out", str(planfile), str(studio.manifests)).exit_code == 0
    studio.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - {name: base15, source: ../files/sd15.safetensors, description: other}
            - {name: house-vae, source: ../files/vae.safetensors, tags: [house]}
        """)
    assert studio.apply().exit_code == 0
    before = studio.snapshot()
    stale = studio.cli("apply", "-y", str(planfile))
    assert stale.exit_code == 1 and "stale" in stale.stderr
    assert {r.name: r.description for r in records(studio)}["base15"] == "other"
    assert studio.snapshot() == before


def test_yaml_record_store(studio):
    db = studio.root / "records.yaml"
    result = studio.cli("--db", str(db), "apply", "-y", str(studio.manifests))
    assert result.exit_code == 0, result.output
    assert "base15" in db.read_text()
    assert not studio.db_path.exists(), "--db replaces the default SQLite store"
    result = studio.cli("--db", str(db), "plan", "--detailed-exitcode", str(studio.manifests))
    assert result.exit_code == 0, result.output


def test_apply_json_has_results(studio):
    result = studio.apply(extra=("-o", "json"))
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [a["result"] for a in doc["actions"]] == ["created", "created"]


def test_sqlite_store_is_wal(studio):
    assert studio.apply().exit_code == 0
    conn = sqlite3.connect(studio.db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    conn.close()
