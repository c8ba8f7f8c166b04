"""ComfyUI ``link: config``: a section of extra_model_paths.yaml, read back as ComfyUI reads it."""

from __future__ import annotations

import json
import os

import yaml

from tests.views.test_views import _apply, _manifest, _plan_json

USER_FILE = """\
# my own paths, kept by the tool
a111:
    base_path: /opt/stable-diffusion-webui/
    checkpoints: models/Stable-diffusion
    vae: models/VAE
"""


def comfy_load(path: str) -> dict[str, list[str]]:
    """ComfyUI's utils/extra_config.py load_extra_path_config, reduced to what it registers:
    folder key -> full paths (values are strings split on newlines; base_path joined)."""
    with open(path) as stream:
        config = yaml.safe_load(stream)
    found: dict[str, list[str]] = {}
    yaml_dir = os.path.dirname(os.path.abspath(path))
    for c in config:
        conf = config[c]
        if conf is None:
            continue
        base_path = None
        if "base_path" in conf:
            base_path = conf.pop("base_path")
            base_path = os.path.expandvars(os.path.expanduser(base_path))
            if not os.path.isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        conf.pop("is_default", None)
        for x in conf:
            for y in conf[x].split("\n"):
                if len(y) == 0:
                    continue
                full_path = y
                if base_path:
                    full_path = os.path.join(base_path, full_path)
                found.setdefault(x, []).append(os.path.normpath(full_path))
    return found


def test_config_section_is_what_comfyui_reads_and_the_rest_of_the_file_stays(ws) -> None:
    root = ws.root / "comfy"
    root.mkdir()
    config = root / "extra_model_paths.yaml"
    config.write_text(USER_FILE)
    _manifest(ws, ["ckpt", "lora", "vae", "pipe"], [("comfy", "comfyui", "../comfy", "config")])
    plan = _plan_json(ws)
    row = next(a for a in plan["actions"] if a["set"] == "view")
    assert [(x["op"], x["path"], x["mode"]) for x in row["links"]] == [
        ("link", f"{config}#reconciler_comfy", "config")]
    _apply(ws)
    text = config.read_text()
    assert text.startswith(USER_FILE)  # comments, order and the user's section kept
    assert "reconciler_comfy:" in text and "checkpoints: |" in text  # literal block strings, not lists
    read = comfy_load(str(config))
    models = ws.models_dir.absolute()

    def holder(name: str) -> str:
        return str(next(p for p in ws.models_dir.rglob(name)).parent.absolute())

    assert read["checkpoints"][-1] == holder("ckpt.safetensors")
    assert read["loras"] == [holder("lora.safetensors")]
    assert read["vae"][-1] == holder("vae.safetensors")
    assert read["diffusers"] == [holder("pipe")]
    assert read["checkpoints"][0] == "/opt/stable-diffusion-webui/models/Stable-diffusion"  # the user's
    assert all(p.startswith(str(models)) for k, v in read.items() for p in v if "webui" not in p)
    section = yaml.safe_load(text)["reconciler_comfy"]
    assert all(isinstance(v, str) for v in section.values())
    assert _plan_json(ws)["summary"]["view"] == 0
    assert json.loads(ws.cli("status", "-o", "json").stdout)["views"][0]["state"] == "in_sync"

    # the user edits the rest of the file: an apply keeps the edit
    config.write_text("# edited by hand\n" + config.read_text().replace(
        "vae: models/VAE", "vae: models/VAE\n    loras: models/Lora") + "mine:\n    base_path: /y\n    loras: z\n")
    _manifest(ws, ["ckpt", "lora"], [("comfy", "comfyui", "../comfy", "config")])
    result = ws.cli("apply", "-y", "--max-deletions", "5", str(ws.manifests))
    assert result.exit_code == 0, result.output
    text = config.read_text()
    assert "    loras: models/Lora" in text and "# edited by hand" in text and "# my own paths" in text
    assert text.endswith("mine:\n    base_path: /y\n    loras: z\n")
    read = comfy_load(str(config))
    assert len(read["vae"]) == 1 and "diffusers" not in read and "/y/z" in read["loras"]  # only the user's vae left

    # the section deleted by hand comes back; the view removed: only its section goes
    config.write_text(USER_FILE)
    assert _plan_json(ws)["actions"][-1]["links"][0]["op"] == "relink"
    _apply(ws)
    assert "reconciler_comfy" in config.read_text()
    _manifest(ws, ["ckpt", "lora"], [])
    _apply(ws)
    assert config.read_text() == USER_FILE


def test_a_users_section_of_that_name_is_a_plan_error(ws) -> None:
    root = ws.root / "comfy"
    root.mkdir()
    (root / "extra_model_paths.yaml").write_text("reconciler_comfy:\n  base_path: /x\n")
    _manifest(ws, ["lora"], [("comfy", "comfyui", "../comfy", "config")])
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 1
    assert "a section this tool did not make" in result.output
    assert (root / "extra_model_paths.yaml").read_text() == "reconciler_comfy:\n  base_path: /x\n"


def test_a_new_file_is_written_and_removed_with_the_view(ws) -> None:
    _manifest(ws, ["lora"], [("comfy", "comfyui", "../comfy", "config")])
    _apply(ws)
    config = ws.root / "comfy/extra_model_paths.yaml"
    assert list(comfy_load(str(config))) == ["loras"]
    _manifest(ws, ["lora"], [])
    _apply(ws)
    assert not config.exists()
