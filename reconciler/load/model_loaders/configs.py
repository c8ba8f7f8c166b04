"""Where the diffusers configs for single-file checkpoints come from, and the files they lack.

A single-file checkpoint holds weights only.  Turning it into diffusers models needs each
component's diffusers config (``unet/config.json``, ``vae/config.json``, ...), which diffusers'
``from_single_file`` otherwise fetches from the Hub.  The package ships them (plain JSON facts
of the public models, see ``reconciler/load/configs/SOURCES.md``), one folder per base, variant
and prediction type:

=============  ===================================================
sd-1           runwayml/stable-diffusion-v1-5
sd-1-inpaint   runwayml/stable-diffusion-inpainting
sd-2           stabilityai/stable-diffusion-2-1-base (512, epsilon)
sd-2-v         stabilityai/stable-diffusion-2-1 (768, v-prediction)
sd-2-inpaint   stabilityai/stable-diffusion-2-inpainting
sd-2-depth     stabilityai/stable-diffusion-2-depth
sdxl           stabilityai/stable-diffusion-xl-base-1.0
sdxl-refiner   stabilityai/stable-diffusion-xl-refiner-1.0
controlnet-*   ControlNet configs (sd-1, sd-2, sdxl)
=============  ===================================================

``load_configs_dir`` (a setting) points at a folder of the same layout whose files win, file
by file: a folder holding only ``sd-1/tokenizer/`` adds the tokenizer and keeps the shipped
configs.  A checkpoint record's ``config`` field naming a diffusers folder wins over both.

Tokenizers (and sd-2-depth's depth estimator) are no part of a checkpoint and are not shipped
(a tokenizer's vocabulary is not a config).  They are looked for in the config folders, then in
the Hugging Face cache (offline: ``local_files_only``); otherwise :class:`MissingLoadFilesError`
says how to provide them.  Nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from reconciler.errors import MissingLoadFilesError
from reconciler.taxonomy import BaseModelType, ModelVariantType, SchedulerPredictionType

#: the configs shipped as package data
SHIPPED_CONFIGS = Path(__file__).resolve().parent.parent / "configs"

#: Hugging Face repos (and subfolders) whose cached copy may hold a component a checkpoint lacks
HF_CACHE_SOURCES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("sd-1", "tokenizer"): (("runwayml/stable-diffusion-v1-5", "tokenizer"),
                            ("stable-diffusion-v1-5/stable-diffusion-v1-5", "tokenizer"),
                            ("openai/clip-vit-large-patch14", "")),
    ("sd-2", "tokenizer"): (("stabilityai/stable-diffusion-2-1", "tokenizer"),
                            ("stabilityai/stable-diffusion-2-1-base", "tokenizer"),
                            ("stabilityai/stable-diffusion-2", "tokenizer")),
    ("sdxl", "tokenizer"): (("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer"),
                            ("openai/clip-vit-large-patch14", "")),
    ("sdxl", "tokenizer_2"): (("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2"),),
    ("sdxl-refiner", "tokenizer_2"): (("stabilityai/stable-diffusion-xl-refiner-1.0", "tokenizer_2"),
                                      ("stabilityai/stable-diffusion-xl-base-1.0", "tokenizer_2")),
    ("sd-2", "depth_estimator"): (("stabilityai/stable-diffusion-2-depth", "depth_estimator"),),
    ("sd-2", "feature_extractor"): (("stabilityai/stable-diffusion-2-depth", "feature_extractor"),),
}


def config_folder_name(base: BaseModelType, variant: Optional[ModelVariantType] = None,
                       prediction: Optional[SchedulerPredictionType] = None) -> str:
    """The configs folder of a main model: ``sd-1``, ``sd-1-inpaint``, ``sd-2-v``, ``sdxl-refiner``...

    The prediction type picks the folder only for normal sd-2 models (the 768-v model and the
    512 base differ in more than the scheduler); elsewhere it only sets the scheduler's
    ``prediction_type``.
    """
    variant = variant or ModelVariantType.Normal
    if variant is ModelVariantType.Normal:
        if base is BaseModelType.StableDiffusion2 and prediction is SchedulerPredictionType.VPrediction:
            return "sd-2-v"
        return base.value
    return f"{base.value}-{variant.value}"


def controlnet_config_name(base: BaseModelType) -> str:
    return f"controlnet-{base.value}"


@dataclass
class ConfigFolders:
    """The folders one config name resolves to, most specific first."""

    name: str
    roots: list[Path]
    configs_dir: Optional[Path]

    def find(self, relative: str) -> Optional[Path]:
        """The first root holding ``relative`` (a file or a folder)."""
        for root in self.roots:
            if (root / relative).exists():
                return root
        return None

    def require(self, relative: str, what: str) -> Path:
        root = self.find(relative)
        if root is None:
            raise MissingLoadFilesError(
                f"no {relative} for {what}: looked in {self._looked()}. Put the diffusers config of the model "
                f"(e.g. its {relative} from the Hugging Face repo) at {self.where_to_put(relative)}; nothing is downloaded")
        return root

    def _looked(self) -> str:
        return ", ".join(str(r) for r in self.roots) or f"(no configs named {self.name!r})"

    def where_to_put(self, relative: str) -> str:
        base = self.configs_dir if self.configs_dir is not None else Path("<load_configs_dir>")
        return str(base / self.name / relative) + (" (set load_configs_dir / RECONCILER_LOAD_CONFIGS_DIR)"
                                                    if self.configs_dir is None else "")


def config_folders(app_config: Any, name: str, explicit: Optional[str | Path] = None) -> ConfigFolders:
    """The folders to read ``name``'s configs from: an explicit diffusers folder (a record's
    ``config`` naming one), ``load_configs_dir/<name>``, the shipped ``configs/<name>``."""
    roots: list[Path] = []
    if explicit:
        path = Path(explicit)
        if not path.is_absolute():
            path = Path(getattr(app_config, "models_dir", ".")) / path
        if path.is_dir():
            roots.append(path)
    configs_dir = getattr(app_config, "load_configs_dir", None)
    configs_dir = Path(configs_dir) if configs_dir else None
    if configs_dir is not None and (configs_dir / name).is_dir():
        roots.append(configs_dir / name)
    if (SHIPPED_CONFIGS / name).is_dir():
        roots.append(SHIPPED_CONFIGS / name)
    return ConfigFolders(name=name, roots=roots, configs_dir=configs_dir)


def shipped_config_names() -> list[str]:
    """Every config folder the package ships."""
    return sorted(p.name for p in SHIPPED_CONFIGS.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def find_extra_component(folders: ConfigFolders, base: BaseModelType, component: str, library: str,
                         class_name: str, dtype: Any) -> Any:
    """A component no checkpoint holds (a tokenizer, a depth estimator), from the config folders
    or the offline Hugging Face cache; MissingLoadFilesError saying how to provide it."""
    from reconciler.load.model_loaders.common import import_class

    cls = import_class(library, class_name)
    root = folders.find(component)
    if root is not None:
        return _load_extra(cls, root / component, "", dtype)
    sources = HF_CACHE_SOURCES.get((base.value, component), ())
    for repo, subfolder in sources:
        try:
            return _load_extra(cls, repo, subfolder, dtype)
        except Exception:  # noqa: BLE001 - not in the cache (or unreadable there): try the next source
            continue
    repos = " or ".join(f"{repo}{'/' + sub if sub else ''}" for repo, sub in sources)
    cache_hint = ""
    if sources:
        repo, sub = sources[0]
        pattern = f"{sub}/*" if sub else "*"
        cache_hint = (f"; or have {repos} in the Hugging Face cache (`hf download {repo} --include '{pattern}'` "
                      f"on a machine with network, then copy its HF cache here)")
    raise MissingLoadFilesError(
        f"a single-file checkpoint has no {component} ({class_name}) and none is on this machine: put its files "
        f"(for a CLIP tokenizer: vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json) in "
        f"{folders.where_to_put(component)}{cache_hint}. Nothing is downloaded")


def _load_extra(cls: Any, where: Path | str, subfolder: str, dtype: Any) -> Any:
    """Load ``cls`` from a local folder, or from the offline HF cache's copy of a repo.

    A repo is looked up with ``try_to_load_from_cache`` first: transformers 5 builds an *empty*
    CLIP tokenizer (2 tokens, no vocabulary) from a repo id it finds nothing for, without an
    error, so ``from_pretrained(repo_id, local_files_only=True)`` cannot tell "not cached".
    """
    from reconciler.load.model_loaders.common import check_tokenizer, from_pretrained, is_tokenizer_class

    folder = Path(where) if not subfolder and Path(where).is_dir() else _cached_folder(str(where), subfolder, cls)
    if folder is None:
        raise FileNotFoundError(f"{where}/{subfolder} is not in the Hugging Face cache")
    import torch

    if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
        return from_pretrained(cls, folder, dtype)
    loaded = cls.from_pretrained(str(folder), local_files_only=True)
    if is_tokenizer_class(cls):
        check_tokenizer(loaded, folder)
    return loaded


def _cached_folder(repo_id: str, subfolder: str, cls: Any) -> Optional[Path]:
    """The folder of ``repo_id/subfolder`` in the HF cache, when the file that makes it loadable is there."""
    from huggingface_hub import try_to_load_from_cache

    from reconciler.load.model_loaders.common import is_tokenizer_class

    markers = ("vocab.json", "tokenizer.json") if is_tokenizer_class(cls) else ("config.json", "preprocessor_config.json")
    for marker in markers:
        filename = f"{subfolder}/{marker}" if subfolder else marker
        try:
            found = try_to_load_from_cache(repo_id, filename)
        except Exception:  # noqa: BLE001 - an unreadable cache is an empty one here
            found = None
        if isinstance(found, str):
            return Path(found).parent
    return None


__all__ = ["ConfigFolders", "HF_CACHE_SOURCES", "SHIPPED_CONFIGS", "config_folder_name", "config_folders",
           "controlnet_config_name", "find_extra_component", "shipped_config_names"]
