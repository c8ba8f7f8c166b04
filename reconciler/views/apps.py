"""Where each app reads each kind of model: the one table of app folders.

The table is the issue's, cell for cell.  A cell is a folder relative to the app's root,
:data:`HF_CACHE` (the app reads that kind from its Hugging Face cache) or :data:`SKIP`
(the app does not read that kind; the plan says so in a note).
"""

from __future__ import annotations

from enum import Enum
from typing import Optional, Union

from reconciler.taxonomy import ModelFormat, ModelType


class App(str, Enum):
    """The apps a ModelView can provision."""

    comfyui = "comfyui"
    a1111 = "a1111"
    forge = "forge"
    sdnext = "sdnext"
    hf_cache = "hf-cache"

    def __str__(self) -> str:
        return self.value


class LinkMode(str, Enum):
    """How a model appears in an app's folder."""

    hardlink = "hardlink"  # default; a copy where the app root is on another filesystem (plan note)
    symlink = "symlink"  # relative where the paths allow
    copy = "copy"
    config = "config"  # ComfyUI only: a section of extra_model_paths.yaml

    def __str__(self) -> str:
        return self.value


class _Marker(str):
    """A cell that is not a folder."""


HF_CACHE = _Marker("hf cache")
SKIP = _Marker("skip")
Cell = Union[str, _Marker]

#: the columns of the table: what a record's (type, format) is called there
KINDS = ("main_checkpoint", "main_diffusers", "lora", "lycoris", "vae", "embedding", "controlnet",
         "t2i_adapter", "ip_adapter", "clip_vision")

_A1111 = {
    "main_checkpoint": "models/Stable-diffusion",
    "main_diffusers": SKIP,
    "lora": "models/Lora",
    "lycoris": "models/LyCORIS",
    "vae": "models/VAE",
    "embedding": "embeddings",
    "controlnet": "models/ControlNet",
    "t2i_adapter": "models/ControlNet",
    "ip_adapter": "models/ControlNet",
    "clip_vision": SKIP,
}

#: THE table (README "Views" prints it): app -> kind -> folder under the app's root
APP_FOLDERS: dict[App, dict[str, Cell]] = {
    App.comfyui: {
        "main_checkpoint": "models/checkpoints",
        "main_diffusers": "models/diffusers",
        "lora": "models/loras",
        "lycoris": "models/loras",
        "vae": "models/vae",
        "embedding": "models/embeddings",
        "controlnet": "models/controlnet",
        "t2i_adapter": "models/t2i_adapter",
        "ip_adapter": "models/ipadapter",
        "clip_vision": "models/clip_vision",
    },
    App.a1111: _A1111,
    App.forge: {**_A1111, "clip_vision": "models/ControlNetPreprocessor"},
    App.sdnext: {
        "main_checkpoint": "models/Stable-diffusion",
        "main_diffusers": HF_CACHE,  # models/Diffusers, in the Hugging Face cache layout
        "lora": "models/Lora",
        "lycoris": "models/Lora",
        "vae": "models/VAE",
        "embedding": "models/embeddings",
        "controlnet": "models/control/controlnet",
        "t2i_adapter": "models/control/adapter",
        "ip_adapter": HF_CACHE,
        "clip_vision": HF_CACHE,
    },
}

#: SD.Next's Hugging Face cache folders (the ``HF_CACHE`` cells)
SDNEXT_HF_FOLDERS = {"main_diffusers": "models/Diffusers", "ip_adapter": "models/huggingface",
                     "clip_vision": "models/huggingface"}


def kind_of(type_: str, format_: str) -> Optional[str]:
    """The table column of a record's type and format; None for kinds no app table names (onnx)."""
    t, f = str(getattr(type_, "value", type_)), str(getattr(format_, "value", format_))
    if t == ModelType.Main.value:
        if f == ModelFormat.Checkpoint.value:
            return "main_checkpoint"
        if f == ModelFormat.Diffusers.value:
            return "main_diffusers"
        return None
    if t == ModelType.LoRA.value:
        return "lycoris" if f == ModelFormat.LyCORIS.value else "lora"
    return {
        ModelType.Vae.value: "vae",
        ModelType.TextualInversion.value: "embedding",
        ModelType.ControlNet.value: "controlnet",
        ModelType.T2IAdapter.value: "t2i_adapter",
        ModelType.IPAdapter.value: "ip_adapter",
        ModelType.CLIPVision.value: "clip_vision",
    }.get(t)


def folder_for(app: App, type_: str, format_: str) -> tuple[Cell, str]:
    """(the cell, a note when the model does not appear as a plain folder entry)."""
    if app is App.hf_cache:
        return HF_CACHE, ""
    kind = kind_of(type_, format_)
    if kind is None:
        return SKIP, f"{app.value} reads no {getattr(type_, 'value', type_)}/{getattr(format_, 'value', format_)} models"
    cell = APP_FOLDERS[app][kind]
    if cell is SKIP:
        return SKIP, f"{app.value} does not read {kind.replace('_', ' ')} models"
    return cell, ""


def app_folders(app: App) -> set[str]:
    """Every folder of the app's table row (never removed by prune, even when empty)."""
    folders = {c for c in APP_FOLDERS.get(app, {}).values() if not isinstance(c, _Marker)}
    if app is App.sdnext:
        folders |= set(SDNEXT_HF_FOLDERS.values())
    return folders


def markdown_table() -> str:
    """The table as Markdown (for the README)."""
    head = "| app | " + " | ".join(k.replace("_", " ") for k in KINDS) + " |"
    rows = [head, "| --- " * (len(KINDS) + 1) + "|"]
    for app, cells in APP_FOLDERS.items():
        rows.append(f"| {app.value} | " + " | ".join(
            ("(not read)" if c is SKIP else SDNEXT_HF_FOLDERS.get(k, "hf cache") + " (hf cache)" if c is HF_CACHE else c)
            for k, c in ((k, cells[k]) for k in KINDS)) + " |")
    return "\n".join(rows)
