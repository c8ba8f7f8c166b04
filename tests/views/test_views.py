"""App views (issue 13): each app's table row, prune, user files, drift, the manifest checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.reconcile.manifest import load_manifests
from reconciler.testing import models as tm
from reconciler.views.apps import APP_FOLDERS, App

#: model name -> (writer, file name in ./files); one model of each kind of the table
KINDS = {
    "ckpt": (tm.write_main_checkpoint, "ckpt.safetensors"),
    "pipe": (tm.write_diffusers_pipeline, "pipe"),
    "lora": (tm.write_lora_kohya, "lora.safetensors"),
    "lyco": (tm.write_lora_lycoris, "lyco.safetensors"),
    "vae": (tm.write_vae_checkpoint, "vae.safetensors"),
    "emb": (tm.write_textual_inversion, "emb.safetensors"),
    "cn": (tm.write_controlnet_checkpoint, "cn.safetensors"),
    "t2i": (tm.write_t2i_adapter, "t2i"),
    "ipa": (tm.write_ip_adapter_checkpoint, "ipa.safetensors"),
    "clipv": (tm.write_clip_vision, "clipv"),
}

#: app -> model -> where it must appear under the app's root (None: not read by the app)
EXPECTED = {
    "comfyui": {"ckpt": "models/checkpoints/ckpt.safetensors", "pipe": "models/diffusers/pipe",
                "lora": "models/loras/lora.safetensors", "lyco": "models/loras/lyco.safetensors",
                "vae": "models/vae/vae.safetensors", "emb": "models/embeddings/emb.safetensors",
                "cn": "models/controlnet/cn.safetensors", "t2i": "models/t2i_adapter/t2i",
                "ipa": "models/ipadapter/ipa.safetensors", "clipv": "models/clip_vision/clipv"},
    "a1111": {"ckpt": "models/Stable-diffusion/ckpt.safetensors", "pipe": None,
              "lora": "models/Lora/lora.safetensors", "lyco": "models/LyCORIS/lyco.safetensors",
              "vae": "models/VAE/vae.safetensors", "emb": "embeddings/emb.safetensors",
              "cn": "models/ControlNet/cn.safetensors", "t2i": "models/ControlNet/t2i",
              "ipa": "models/ControlNet/ipa.safetensors", "clipv": None},
    "sdnext": {"ckpt": "models/Stable-diffusion/ckpt.safetensors", "pipe": None,
               "lora": "models/Lora/lora.safetensors", "lyco": "models/Lora/lyco.safetensors",
               "vae": "models/VAE/vae.safetensors", "emb": "models/embeddings/emb.safetensors",
               "cn": "models/control/controlnet/cn.safetensors", "t2i": "models/control/adapter/t2i",
               "ipa": None, "clipv": None},
}
EXPECTED["forge"] = {**EXPECTED["a1111"], "clipv": "models/ControlNetPreprocessor/clipv"}

SET = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata: {{name: studio}}
spec:
  models:
{models}
"""
VIEW = """\
---
apiVersion: reconciler/v1
kind: ModelView
metadata: {{name: {name}}}
spec:
  app: {app}
  root: {root}
  link: {link}
"""


def _write_models(ws, names) -> str:
    lines = []
    for name in names:
        writer, file = KINDS[name]
        if not (ws.files / file).exists():
            writer(ws.files / file)
        lines.append(f"    - {{name: {name}, source: ../files/{file}}}")
    return "\n".join(lines)


def _manifest(ws, names, views) -> None:
    text = SET.format(models=_write_models(ws, names))
    for name, app, root, link in views:
        text += VIEW.format(name=name, app=app, root=root, link=link)
    ws.write_manifest("m.yaml", text)


def _apply(ws, *extra: str):
    result = ws.cli("apply", "-y", *extra, str(ws.manifests))
    assert result.exit_code == 0, result.output
    return result


def _plan_json(ws) -> dict:
    result = ws.cli("plan", "-o", "json", str(ws.manifests))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_table_matches_the_issue() -> None:
    assert APP_FOLDERS[App.comfyui]["ip_adapter"] == "models/ipadapter"
    assert APP_FOLDERS[App.a1111]["embedding"] == "embeddings"
    assert APP_FOLDERS[App.forge]["clip_vision"] == "models/ControlNetPreprocessor"


@pytest.mark.parametrize("app", sorted(EXPECTED))
def test_every_kind_lands_where_the_app_reads_it_and_prune_removes_only_links(ws, app) -> None:
    root = ws.root / "app"
    _manifest(ws, KINDS, [("v", app, "../app", "hardlink")])
    plan = _plan_json(ws)
    view_row = next(a for a in plan["actions"] if a["set"] == "view")
    assert view_row["action"] == "view" and len(view_row["links"]) == len(KINDS)  # all pending: new models
    _apply(ws)
    tree = _tree(root)
    for model, where in EXPECTED[app].items():
        if where is None:
            assert not any(f"/{model}" in p or p.endswith(f"{model}.safetensors") for p in tree), (model, tree)
            continue
        dest = root / where
        installed = next(ws.models_dir.rglob(f"{model}.safetensors" if not dest.suffix == "" else model))
        if dest.suffix:
            assert dest.is_file() and os.path.samefile(dest, installed), model
        else:
            files = [p for p in installed.rglob("*") if p.is_file()]
            assert files and all(os.path.samefile(dest / f.relative_to(installed), f) for f in files), model
    assert _plan_json(ws)["summary"]["view"] == 0  # in sync: nothing to do
    # a user's own file beside the links
    user = root / Path(EXPECTED[app]["ckpt"]).parent / "mine.safetensors"
    user.write_bytes(b"user bytes")
    _manifest(ws, ["vae"], [("v", app, "../app", "hardlink")])
    _apply(ws, "--max-deletions", "20")
    assert _tree(root) == {Path(EXPECTED[app]["vae"]).as_posix(), user.relative_to(root).as_posix()}
    assert user.read_bytes() == b"user bytes"


def test_user_file_at_a_destination_is_a_plan_error_and_never_overwritten(ws) -> None:
    _manifest(ws, ["lora"], [])
    _apply(ws)
    dest = ws.root / "comfy/models/loras/lora.safetensors"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"mine")
    _manifest(ws, ["lora"], [("comfy", "comfyui", "../comfy", "hardlink")])
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 1
    assert "a file this tool did not make lies at" in result.output
    assert "comfy/models/loras/lora.safetensors" in result.output
    assert dest.read_bytes() == b"mine"


@pytest.mark.parametrize("link", ["hardlink", "symlink", "copy"])
def test_drift_is_repaired(ws, link) -> None:
    _manifest(ws, ["lora", "vae"], [("comfy", "comfyui", "../comfy", link)])
    _apply(ws)
    lora = ws.root / "comfy/models/loras/lora.safetensors"
    vae = ws.root / "comfy/models/vae/vae.safetensors"
    if link == "symlink":
        assert lora.is_symlink() and not os.path.isabs(os.readlink(lora))
    lora.unlink()  # deleted by hand
    vae.unlink()
    vae.write_bytes(b"replaced by hand")
    plan = _plan_json(ws)
    row = next(a for a in plan["actions"] if a["set"] == "view")
    assert sorted((x["op"], x["reason"]) for x in row["links"]) == [("relink", "deleted by hand"),
                                                                      ("relink", "replaced by hand")]
    _apply(ws)
    installed = next(ws.models_dir.rglob("lora.safetensors"))
    assert lora.read_bytes() == installed.read_bytes()
    assert vae.read_bytes() == next(ws.models_dir.rglob("vae.safetensors")).read_bytes()
    assert _plan_json(ws)["summary"]["view"] == 0


def test_status_and_removed_view(ws) -> None:
    _manifest(ws, ["lora"], [("comfy", "comfyui", "../comfy", "symlink")])
    _apply(ws)
    status = json.loads(ws.cli("status", "-o", "json").stdout)
    assert [(v["view"], v["state"]) for v in status["views"]] == [("comfy", "in_sync")]
    detail = json.loads(ws.cli("status", "lora", "-o", "json").stdout)["models"][0]
    assert detail["views"] == [{"view": "comfy", "mode": "symlink",
                                "path": str((ws.root / "comfy/models/loras/lora.safetensors").absolute())}]
    assert "comfy, symlink" in ws.cli("status", "lora").stdout
    _manifest(ws, ["lora"], [])  # the view is no longer declared: its links go, the model stays
    _apply(ws)
    assert not (ws.root / "comfy/models/loras/lora.safetensors").is_symlink()
    assert json.loads(ws.cli("status", "-o", "json").stdout)["views"] == []


def test_yaml_store_records_links(ws) -> None:
    _manifest(ws, ["lora"], [("comfy", "comfyui", "../comfy", "hardlink")])
    db = ws.root / "records.yaml"
    result = ws.cli("--db", str(db), "apply", "-y", str(ws.manifests))
    assert result.exit_code == 0, result.output
    assert "view_links:" in db.read_text() and (ws.root / "comfy/models/loras/lora.safetensors").is_file()
    _manifest(ws, ["vae"], [("comfy", "comfyui", "../comfy", "hardlink")])
    assert ws.cli("--db", str(db), "apply", "-y", str(ws.manifests)).exit_code == 0
    assert not (ws.root / "comfy/models/loras/lora.safetensors").exists()


@pytest.mark.parametrize(("spec", "message"), [
    ("  app: comfyui\n  root: x\n  link: config\n  sets: [nope]\n", "names sets that were not read"),
    ("  app: a1111\n  root: x\n  link: config\n", "link: config is for app comfyui only"),
    ("  app: paint\n  root: x\n", "v.yaml:5:8: app: invalid value 'paint'"),
    ("  app: comfyui\n", "spec.root is required"),
])
def test_bad_views_name_file_and_line(tmp_path, spec, message) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("apiVersion: reconciler/v1\nkind: ModelView\nmetadata: {name: v}\nspec:\n" + spec)
    with pytest.raises(ManifestError) as err:
        load_manifests([f])
    assert message in str(err.value) and str(err.value).startswith(f"{f}:")


def test_a_model_removed_from_the_sets_loses_its_links_before_its_files(ws, monkeypatch) -> None:
    import reconciler.reconcile.views as planner
    from reconciler.install.service import ModelInstallService

    _manifest(ws, ["lora", "vae"], [("comfy", "comfyui", "../comfy", "hardlink")])
    _apply(ws)
    order: list[str] = []
    real_remove, real_delete = planner.remove, ModelInstallService.delete

    def remove(link, *args, **kwargs):
        order.append(f"unlink {link.model}")
        return real_remove(link, *args, **kwargs)

    def delete(self, key, *args, **kwargs):
        order.append(f"delete {self.record_store.get_model(key).name}")
        return real_delete(self, key, *args, **kwargs)

    monkeypatch.setattr(planner, "remove", remove)
    monkeypatch.setattr(ModelInstallService, "delete", delete)
    _manifest(ws, ["vae"], [("comfy", "comfyui", "../comfy", "hardlink")])
    _apply(ws)
    assert order == ["unlink lora", "delete lora"]
    assert not (ws.root / "comfy/models/loras/lora.safetensors").exists()


def test_two_models_that_would_take_one_name_are_an_error_naming_both(ws) -> None:
    """Names are unique across every set read, so two sets' models of one name and kind under one
    view stop at the manifest check, naming both places, before anything is linked."""
    tm.write_lora_kohya(ws.files / "a.safetensors")
    tm.write_lora_kohya(ws.files / "b.safetensors")
    ws.write_manifest("m.yaml", """\
apiVersion: reconciler/v1
kind: ModelSet
metadata: {name: one}
spec:
  models:
    - {name: detail, source: ../files/a.safetensors}
---
apiVersion: reconciler/v1
kind: ModelSet
metadata: {name: two}
spec:
  models:
    - {name: detail, source: ../files/b.safetensors}
---
apiVersion: reconciler/v1
kind: ModelView
metadata: {name: comfy}
spec: {app: comfyui, root: ../comfy}
""")
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 1
    assert "m.yaml:13:7: duplicate model name 'detail' (first declared at " in result.output
    assert "m.yaml:6:7" in result.output
    assert not (ws.root / "comfy").exists()
