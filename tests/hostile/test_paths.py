"""Names and paths: nothing is ever written outside ``<models_dir>``, and nothing outside it
(or registered in place) is ever removed, whatever a manifest, a hub listing or a
hand-edited record says."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from reconciler.errors import UnsafePathError
from reconciler.install.paths import install_destination, removable
from reconciler.store.base import ModelRecordServiceBase
from tests.hostile.conftest import refused, tree, write_raw
from tests.hostile.yamltext import HEADER, entry_manifest, yq
from tests.hub.conftest import hub, lora_repo_files  # noqa: F401 - fixtures

HOSTILE_NAMES = {
    "dotdot": "..",
    "dot": ".",
    "slash": "a/b",
    "escape": "../../escape",
    "absolute": "/etc/passwd",
    "backslashes": "..\\..\\x",
    "drive": "C:\\x",
    "nul-char": "a\x00b",
    "newline": "a\nb",
    "CON": "CON",
    "con": "con",
    "nul.txt": "nul.txt",
    "COM1": "COM1",
    "lpt9.safetensors": "lpt9.safetensors",
    "AUX": "AUX",
    "PRN-space-ext": "PRN .x",
    "CONIN$": "CONIN$",
    "leading-space": " x",
    "trailing-space": "x ",
    "empty": "",
    "201-chars": "x" * 201,
    "202-bytes": "\u00e9" * 101,
}


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_a_hostile_model_name_is_refused_where_it_is_written(lora_ws, case: str, command: str) -> None:
    line = refused(lora_ws, command, entry_manifest(HOSTILE_NAMES[case]))
    assert line.startswith(f"{lora_ws.manifests / 'm.yaml'}:7:13: name"), line


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_install_destination_refuses_a_hostile_name(tmp_path: Path, case: str) -> None:
    """Defence in depth: the installer refuses what the manifest refused (library callers
    never pass through a manifest)."""
    name = HOSTILE_NAMES[case]
    src = tmp_path / "m.safetensors"
    src.write_bytes(b"x")
    if case in ("leading-space", "trailing-space", "201-chars", "202-bytes"):
        # not a path hazard: the installer takes them, strictly inside the models dir
        dest = install_destination(tmp_path / "models", "sd-1", "lora", name, src)
        assert dest.parent == tmp_path / "models" / "sd-1" / "lora"
        return
    with pytest.raises(UnsafePathError, match="cannot be used as a folder name"):
        install_destination(tmp_path / "models", "sd-1", "lora", name, src)


@pytest.mark.parametrize(("base", "type_"), [("..", "x"), ("../..", "lora"), ("sd-1", "../../.."), ("/abs", "lora"),
                                             ("sd-1/../../..", "lora"), (".reconciler", "tmp"), ("..", ".")])
def test_install_destination_never_leaves_the_models_dir(tmp_path: Path, base: str, type_: str) -> None:
    src = tmp_path / "m.safetensors"
    src.write_bytes(b"x")
    with pytest.raises(UnsafePathError, match="outside the models dir"):
        install_destination(tmp_path / "models", base, type_, "ok", src)


def test_install_destination_follows_a_folder_the_user_linked(tmp_path: Path) -> None:
    """Checked on the path as written: a folder the user symlinked inside the models dir (onto
    another disk) is used; only deleting never follows a symlink out (see removable)."""
    other_disk = tmp_path / "disk2"
    other_disk.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sdxl").symlink_to(other_disk)
    src = tmp_path / "m.safetensors"
    src.write_bytes(b"x")
    dest = install_destination(tmp_path / "models", "sdxl", "lora", "big", src)
    assert dest == tmp_path / "models" / "sdxl" / "lora" / "big.safetensors"


def test_removable_only_strictly_inside_and_never_the_state_folder(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "sd-1" / "lora").mkdir(parents=True)
    (models / ".reconciler").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.safetensors").write_bytes(b"keep")
    (models / "sd-1" / "lora" / "link.safetensors").symlink_to(outside / "keep.safetensors")
    (models / "linkdir").symlink_to(outside)
    assert removable(models / "sd-1" / "lora" / "x.safetensors", models)
    assert removable(models / "sd-1", models)
    assert not removable(models, models)
    assert not removable(models / ".", models)
    assert not removable(models / ".reconciler", models)
    assert not removable(models / ".reconciler" / "records.db", models)
    assert not removable(outside / "keep.safetensors", models)
    assert not removable(models / ".." / "outside" / "keep.safetensors", models)
    assert not removable(models / "sd-1" / "lora" / "link.safetensors", models)
    assert not removable(models / "linkdir" / "keep.safetensors", models)
    assert not removable(Path("/"), models)


# --- hostile hub listings, through apply -------------------------------------------------------------

@pytest.fixture
def remote_ws(lora_ws, hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("RECONCILER_CIVITAI_ENDPOINT", hub.civitai_endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    lora_ws.hub = hub
    return lora_ws


def outside_models(ws) -> dict:
    return {k: v for k, v in tree(ws.root).items() if k != "models" and not k.startswith("models/")}


HOSTILE_LISTINGS = ["../../x.safetensors", "/abs.safetensors", "unet/../../../x.safetensors", "C:\\x.safetensors",
                    "C:/x.safetensors", "a\\..\\..\\x.safetensors", "x\x00y.safetensors", "./x.safetensors",
                    "unet//x.safetensors", "\\\\server\\share\\x.safetensors"]


@pytest.mark.parametrize("bad", HOSTILE_LISTINGS)
def test_a_hostile_hub_file_name_never_lands_outside(remote_ws, bad: str) -> None:
    ws = remote_ws
    ws.hub.add_raw_listing("evil/repo", ["model_index.json", "unet/config.json", bad])
    write_raw(ws, HEADER + "spec:\n  models:\n    - {name: evil, source: evil/repo}\n")
    before = outside_models(ws)
    result = ws.apply()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert repr(bad)[1:-1] in result.stderr and "evil/repo" in result.stderr, result.stderr
    assert ws.records() == []
    assert outside_models(ws) == before, "something was written outside the models dir"
    models = tree(ws.models_dir) if ws.models_dir.exists() else {}
    assert [k for k in models if not k.startswith(".reconciler")] == [], models


def test_a_hub_file_with_a_windows_device_name_lands_inside(remote_ws, lora_repo_files) -> None:  # noqa: F811
    """A hub file called CON.safetensors is a file like any other here: the model takes its
    own (manifest) name, strictly inside the models dir."""
    ws = remote_ws
    ws.hub.add_repo("odd/repo", {"CON.safetensors": lora_repo_files["detail-tweaker.safetensors"],
                                 "README.md": b"# odd\n"})
    write_raw(ws, HEADER + "spec:\n  models:\n    - {name: odd, source: 'odd/repo::CON.safetensors'}\n")
    before = outside_models(ws)
    result = ws.apply()
    assert result.exit_code == 0, result.output
    (record,) = ws.records()
    assert record.path == "sd-1/lora/odd.safetensors"
    assert (ws.models_dir / record.path).read_bytes() == lora_repo_files["detail-tweaker.safetensors"]
    assert outside_models(ws) == before


# --- delete and prune never remove anything outside, or in place ------------------------------------------

def two_models(ws) -> None:
    for n in ("a", "b"):
        shutil.copyfile(ws.files / "lora.safetensors", ws.files / f"{n}.safetensors")
    write_raw(ws, HEADER + "spec:\n  models:\n"
              "    - {name: a, source: ../files/a.safetensors}\n"
              "    - {name: b, source: ../files/b.safetensors}\n")
    result = ws.apply()
    assert result.exit_code == 0, result.output


def edit_record(ws, name: str, **changes) -> None:
    """What a user with a text editor (or a bad script) can do to the store."""
    store = ModelRecordServiceBase.from_db_file(ws.db_path)
    try:
        (key,) = [r.key for r in store.all_models() if r.name == name]
        store.update_model(key, changes)
    finally:
        store.close()


def prune_b(ws):
    write_raw(ws, HEADER + "spec:\n  models:\n    - {name: a, source: ../files/a.safetensors}\n")
    return ws.apply()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def outside(lora_ws) -> Path:
    """A file outside the models dir that nothing may remove."""
    folder = lora_ws.root / "outside"
    folder.mkdir()
    keep = folder / "keep.safetensors"
    shutil.copyfile(lora_ws.files / "lora.safetensors", keep)
    return keep


@pytest.mark.parametrize("how", ["absolute", "relative-escape", "models-dir-itself", "state-folder",
                                 "state-database", "symlink-to-outside", "through-linked-folder"])
def test_prune_never_removes_outside_the_models_dir(lora_ws, outside: Path, how: str) -> None:
    ws = lora_ws
    two_models(ws)
    b_file = ws.models_dir / "sd-1" / "lora" / "b.safetensors"
    if how == "absolute":
        edit_record(ws, "b", path=str(outside))
    elif how == "relative-escape":
        edit_record(ws, "b", path="../outside/keep.safetensors")
    elif how == "models-dir-itself":
        edit_record(ws, "b", path=".")
    elif how == "state-folder":
        edit_record(ws, "b", path=".reconciler")
    elif how == "state-database":
        edit_record(ws, "b", path=".reconciler/records.db")
    elif how == "symlink-to-outside":
        b_file.unlink()
        b_file.symlink_to(outside)
    else:
        (ws.models_dir / "linked").symlink_to(outside.parent)
        edit_record(ws, "b", path="linked/keep.safetensors")
    kept = sha(outside)
    a_file = ws.models_dir / "sd-1" / "lora" / "a.safetensors"
    result = prune_b(ws)
    assert result.exit_code == 0, result.output
    assert "deleted" in result.stdout, result.stdout
    assert [r.name for r in ws.records()] == ["a"]
    assert sha(outside) == kept, "the file outside the models dir must survive"
    assert a_file.is_file() and ws.db_path.is_file()
    if how == "symlink-to-outside":
        assert b_file.is_symlink(), "the link stays: removing it would need following it out first"


def test_prune_never_removes_an_inplace_model(lora_ws) -> None:
    ws = lora_ws
    shutil.copyfile(ws.files / "lora.safetensors", ws.files / "a.safetensors")
    write_raw(ws, HEADER + "spec:\n  models:\n"
              "    - {name: a, source: ../files/a.safetensors}\n"
              "    - {name: here, source: ../files/lora.safetensors, inplace: true}\n")
    assert ws.apply().exit_code == 0
    kept = sha(ws.files / "lora.safetensors")
    write_raw(ws, HEADER + "spec:\n  models:\n    - {name: a, source: ../files/a.safetensors}\n")
    result = ws.apply()
    assert result.exit_code == 0, result.output
    assert [r.name for r in ws.records()] == ["a"]
    assert sha(ws.files / "lora.safetensors") == kept


def test_prune_never_removes_a_file_marked_inplace_inside_the_models_dir(lora_ws) -> None:
    """A record marked in place owns nothing, wherever its files lie."""
    ws = lora_ws
    two_models(ws)
    b_file = ws.models_dir / "sd-1" / "lora" / "b.safetensors"
    edit_record(ws, "b", inplace=True)
    result = prune_b(ws)
    assert result.exit_code == 0, result.output
    assert [r.name for r in ws.records()] == ["a"]
    assert b_file.is_file()


@pytest.mark.parametrize("path", ["/", "..", "../..", ".", ".reconciler"])
def test_library_delete_never_removes_outside_or_the_state(lora_ws, path: str) -> None:
    """ModelInstallService.delete (what prune calls) on a record that names a dangerous path."""
    from reconciler.install.service import ModelInstallService
    from reconciler.settings import load_settings

    ws = lora_ws
    two_models(ws)
    edit_record(ws, "b", path=path)
    before = {k: v for k, v in tree(ws.root).items() if "records.db" not in k and not k.endswith(".lock")}
    settings = load_settings(models_dir=ws.models_dir, environ={})
    store = ModelRecordServiceBase.from_db_file(ws.db_path)
    try:
        installer = ModelInstallService(settings, store)
        (key,) = [r.key for r in store.all_models() if r.name == "b"]
        installer.delete(key)
        assert [r.name for r in store.all_models()] == ["a"]
    finally:
        store.close()
    after = {k: v for k, v in tree(ws.root).items() if "records.db" not in k and not k.endswith(".lock")}
    assert after == before


def test_names_in_yaml_reach_the_rule_unchanged() -> None:
    """The tests' quoting writes any name exactly (NUL, line breaks and all)."""
    import yaml

    for name in HOSTILE_NAMES.values():
        assert yaml.safe_load(yq(name)) == name
