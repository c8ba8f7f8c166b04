"""`reconciler import`: a manifest for the models already on disk / in the store, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.install.scan import sync_to_config
from reconciler.reconcile.services import open_services
from reconciler.settings import load_settings
from reconciler.testing.models import (
    write_diffusers_pipeline,
    write_lora_kohya,
    write_not_a_model,
    write_vae_checkpoint,
)


def services(ws):
    return open_services(load_settings(models_dir=ws.models_dir, environ={}), create=True)


def entries(path: Path) -> dict[str, dict]:
    docs = [d for d in YAML(typ="safe").load_all(path.read_text()) if d]
    return {m["name"]: m for d in docs for m in d["spec"]["models"]}


def actions(plan: dict) -> dict[str, str]:
    return {a["name"]: a["action"] for a in plan["actions"]}


def disk(ws) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in ws.snapshot().items() if not k.startswith(".reconciler/")}


@pytest.fixture
def by_hand(ws):
    """Models copied into <base>/<type>/<name> by hand, a non-model, and a model elsewhere
    registered in place."""
    write_lora_kohya(ws.models_dir / "sd-1" / "lora" / "style.safetensors", base="sd-1")
    write_vae_checkpoint(ws.models_dir / "sdxl" / "vae" / "xl-vae.safetensors", base="sdxl")
    write_diffusers_pipeline(ws.models_dir / "sd-1" / "main" / "dreamy", base="sd-1")
    write_not_a_model(ws.models_dir / "sd-1" / "lora" / "notes.safetensors", "text")
    elsewhere = write_lora_kohya(ws.root / "shared" / "team-lora.safetensors", base="sdxl")
    with services(ws) as svc:
        key = svc.installer.register_path(elsewhere, {"description": "the team's", "tags": ["team"]})
    return key


def test_import_then_plan_shows_only_adopt_then_apply_gives_noop(ws, by_hand) -> None:
    out = ws.manifests / "imported.yaml"
    before = disk(ws)
    result = ws.cli("import", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Warning: skipped" in result.stderr and "notes.safetensors" in result.stderr
    assert "Declared 4 model(s) in set 'imported'" in result.stdout

    declared = entries(out)
    assert declared == {
        "dreamy": {"name": "dreamy", "source": "../models/sd-1/main/dreamy", "type": "main", "base": "sd-1"},
        "style": {"name": "style", "source": "../models/sd-1/lora/style.safetensors", "type": "lora",
                  "base": "sd-1"},
        "xl-vae": {"name": "xl-vae", "source": "../models/sdxl/vae/xl-vae.safetensors", "type": "vae",
                   "base": "sdxl"},
        "team-lora": {"name": "team-lora", "source": str(ws.root / "shared" / "team-lora.safetensors"),
                      "inplace": True, "type": "lora", "base": "sdxl", "description": "the team's",
                      "tags": ["team"]},
    }

    plan = ws.plan_json(str(out))
    assert actions(plan) == {"dreamy": "adopt", "style": "adopt", "xl-vae": "adopt", "team-lora": "adopt"}
    assert plan["summary"]["download_bytes"] == 0
    assert next(a for a in plan["actions"] if a["name"] == "team-lora")["key"] == by_hand

    applied = ws.apply(str(out))
    assert applied.exit_code == 0, applied.output
    assert disk(ws) == before  # nothing copied, moved or removed
    assert set(actions(ws.plan_json(str(out))).values()) == {"noop"}

    status = json.loads(ws.cli("status", "-o", "json").stdout)
    assert {(m["name"], m["managed_by"], m["state"]) for m in status["models"]} == {
        ("dreamy", "imported", "in_sync"), ("style", "imported", "in_sync"),
        ("xl-vae", "imported", "in_sync"), ("team-lora", "imported", "in_sync"),
    }
    # a second import finds nothing new and leaves the file alone
    text = out.read_text()
    again = ws.cli("import", "--out", str(out))
    assert again.exit_code == 0 and "Declared 0 model(s)" in again.stdout and out.read_text() == text


def test_import_without_out_prints_the_manifest(ws, by_hand) -> None:
    result = ws.cli("import", "--set", "studio")
    assert result.exit_code == 0, result.output
    doc = YAML(typ="safe").load(result.stdout)
    assert doc["metadata"] == {"name": "studio"} and doc["kind"] == "ModelSet"
    sources = {m["name"]: m["source"] for m in doc["spec"]["models"]}
    # relative to the working directory, where the manifest would be saved
    assert sources["style"] == "./models/sd-1/lora/style.safetensors"
    assert "Declared 4 model(s) in set 'studio'" in result.stderr
    assert not ws.manifests.joinpath("imported.yaml").exists()


def test_import_into_an_existing_file_keeps_comments_and_order(ws, by_hand) -> None:
    out = ws.write_manifest("team.yaml", """
        # Our models. This comment stays.
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata:
          name: imported   # the set import adds to
        spec:
          models:
            # declared by hand, keys in our own order
            - source: '../models/sd-1/lora/style.safetensors'
              name: style
              base: sd-1   # said by hand
            # more to come
          prune: false
        # end of file
        """)
    original = out.read_text().splitlines(keepends=True)
    result = ws.cli("import", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines(keepends=True)
    new = [line for line in lines if line not in original]
    # every original line is still there, unchanged and in order; only whole lines were added
    assert [line for line in lines if line in original] == original
    assert "".join(new).count("- name:") == 3 and "style.safetensors" not in "".join(new)  # declared already
    # the new entries follow the last entry, before the comment that closes the list
    assert lines.index(new[0]) == original.index("      base: sd-1   # said by hand\n") + 1
    assert lines.index("    # more to come\n") > lines.index(new[-1])
    assert set(entries(out)) == {"style", "dreamy", "xl-vae", "team-lora"}
    assert set(actions(ws.plan_json(str(out))).values()) == {"adopt"}


def test_import_fills_an_empty_flow_list(ws, by_hand) -> None:
    out = ws.write_manifest("team.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: imported}
        spec:
          models: []   # nothing yet
        """)
    assert ws.cli("import", "--out", str(out)).exit_code == 0
    text = out.read_text()
    assert "  models:   # nothing yet\n    - name: " in text
    assert len(entries(out)) == 4


def test_import_appends_a_document_when_the_file_has_other_sets(ws, by_hand) -> None:
    out = ws.write_manifest("all.yaml", """
        # the studio set
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models: []
        """)
    original = out.read_text()
    result = ws.cli("import", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith(original.rstrip("\n")) and "\n---\n" in text
    docs = [d for d in YAML(typ="safe").load_all(text) if d]
    assert [d["metadata"]["name"] for d in docs] == ["studio", "imported"]
    assert len(docs[1]["spec"]["models"]) == 4


def test_import_keeps_records_of_the_set_that_its_manifest_no_longer_declares(ws) -> None:
    write_lora_kohya(ws.files / "a.safetensors")
    write_vae_checkpoint(ws.files / "b.safetensors")
    manifest = ws.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: studio}
        spec:
          models:
            - {name: a, source: ../files/a.safetensors, tags: [x]}
            - {name: b, source: ../files/b.safetensors, description: bee}
        """)
    assert ws.apply(str(manifest)).exit_code == 0
    manifest.write_text(manifest.read_text().replace(
        "    - {name: b, source: ../files/b.safetensors, description: bee}\n", ""))
    assert actions(ws.plan_json(str(manifest)))["b"] == "delete"

    result = ws.cli("import", "--set", "studio", "--out", str(manifest))
    assert result.exit_code == 0, result.output
    # outside the models dir and the manifest's folder: the record's own source, absolute
    assert entries(manifest)["b"] == {"name": "b", "source": str(ws.files / "b.safetensors"), "type": "vae",
                                      "base": "sd-1", "description": "bee"}
    assert set(actions(ws.plan_json(str(manifest))).values()) == {"noop"}


def test_a_model_elsewhere_in_the_models_dir_is_declared_in_place(ws) -> None:
    odd = write_vae_checkpoint(ws.models_dir / "vaes" / "odd.safetensors", base="sd-1")
    out = ws.manifests / "imported.yaml"
    assert ws.cli("import", "--out", str(out)).exit_code == 0
    assert entries(out)["odd"] == {"name": "odd", "source": "../models/vaes/odd.safetensors", "inplace": True,
                                   "type": "vae", "base": "sd-1"}
    [action] = ws.plan_json(str(out))["actions"]
    assert action["action"] == "adopt" and action.get("write_bytes", 0) == 0  # the files already lie there
    assert ws.apply(str(out)).exit_code == 0
    assert odd.exists() and not (ws.models_dir / "sd-1" / "vae").exists()  # registered where it lies
    assert set(actions(ws.plan_json(str(out))).values()) == {"noop"}
    assert ws.apply(str(out)).exit_code == 0 and odd.exists()


def test_a_model_elsewhere_in_the_models_dir_plans_adopt(ws) -> None:
    write_vae_checkpoint(ws.models_dir / "vaes" / "odd.safetensors", base="sd-1")
    out = ws.manifests / "imported.yaml"
    assert ws.cli("import", "--out", str(out)).exit_code == 0
    assert actions(ws.plan_json(str(out))) == {"odd": "adopt"}


def test_an_owned_record_off_its_destination_is_adopted_in_place_and_survives(ws) -> None:
    """sync_to_config registers models/vaes/odd.safetensors as a record that owns its files;
    import declares it `inplace: true`, the plan adopts it where it is (no bytes move), and
    neither that apply nor a later prune deletes the file."""
    odd = write_vae_checkpoint(ws.models_dir / "vaes" / "odd.safetensors", base="sd-1")
    with services(ws) as svc:
        assert len(sync_to_config(svc.installer).added) == 1
    out = ws.manifests / "imported.yaml"
    result = ws.cli("import", "--out", str(out))
    assert result.exit_code == 0, result.output
    declared = entries(out)
    (entry,) = declared.values()
    assert entry["inplace"] is True
    plan = ws.plan_json(str(out))
    assert actions(plan) == {"odd": "adopt"}  # the unmanaged record holds the files: adopted, no bytes move
    assert ws.apply(str(out)).exit_code == 0 and odd.exists()
    assert ws.cli("plan", "--detailed-exitcode", str(out)).exit_code == 0
    out.write_text(out.read_text().split("  models:")[0] + "  models: []\n")
    assert ws.apply(str(out), extra=("--allow-empty",)).exit_code == 0
    assert odd.exists(), "pruning an in-place model removes its record only"


def test_name_clashes_are_made_unique(ws) -> None:
    write_lora_kohya(ws.models_dir / "sd-1" / "lora" / "style.safetensors", base="sd-1")
    write_lora_kohya(ws.models_dir / "sdxl" / "lora" / "style.safetensors", base="sdxl")
    out = ws.manifests / "imported.yaml"
    assert ws.cli("import", "--out", str(out)).exit_code == 0
    declared = entries(out)
    assert declared["style"]["source"] == "../models/sd-1/lora/style.safetensors"
    assert declared["style-2"]["inplace"] is True
    assert declared["style-2"]["source"] == "../models/sdxl/lora/style.safetensors"
    plan = ws.plan_json(str(out))
    assert actions(plan)["style"] == "adopt" and plan["summary"]["download_bytes"] == 0


def test_a_file_named_like_a_windows_device_gets_a_name_the_manifest_accepts(ws) -> None:
    write_lora_kohya(ws.models_dir / "sd-1" / "lora" / "con.safetensors", base="sd-1")
    write_lora_kohya(ws.models_dir / "sd-1" / "lora" / ("\u00e9" * 120 + ".safetensors"), base="sd-1")
    out = ws.manifests / "imported.yaml"
    result = ws.cli("import", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(entries(out)) == ["model-con", "\u00e9" * 100]  # names fit in 200 bytes of UTF-8
    result = ws.cli("validate", str(out))
    assert result.exit_code == 0, result.output


def test_import_scans_another_dir_in_place(ws) -> None:
    write_lora_kohya(ws.root / "library" / "x.safetensors")
    result = ws.cli("import", str(ws.root / "library"), "--out", str(ws.manifests / "lib.yaml"))
    assert result.exit_code == 0, result.output
    assert entries(ws.manifests / "lib.yaml")["x"]["inplace"] is True


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "Bad Name"), "--set: set name 'Bad Name' must be"),
    (("nowhere",), "nowhere does not exist"),
])
def test_import_errors_are_one_line(ws, args, message) -> None:
    result = ws.cli("import", *args)
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_import_refuses_a_set_declared_in_another_file(ws, by_hand) -> None:
    ws.write_manifest("studio.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: imported}
        """)
    result = ws.cli("import", "--out", str(ws.root / "other.yaml"))
    assert result.exit_code == 1 and "is declared in" in result.stderr
