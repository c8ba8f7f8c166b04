"""The shipped diffusers configs: each loads into its config class, and the model it describes
has the weight shapes the prober expects for its base and variant."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tomllib

from reconciler.load.model_loaders.configs import (
    SHIPPED_CONFIGS,
    config_folder_name,
    config_folders,
    shipped_config_names,
)
from reconciler.probe.rules import StateDictInfo, classify_state_dict
from reconciler.taxonomy import BaseModelType, ModelType, ModelVariantType, SchedulerPredictionType
from reconciler.testing import ldm

PIPELINES = {  # folder -> (base, variant, prediction type)
    "sd-1": ("sd-1", "normal", "epsilon"),
    "sd-1-inpaint": ("sd-1", "inpaint", "epsilon"),
    "sd-2": ("sd-2", "normal", "epsilon"),
    "sd-2-v": ("sd-2", "normal", "v_prediction"),
    "sd-2-inpaint": ("sd-2", "inpaint", "epsilon"),
    "sd-2-depth": ("sd-2", "depth", "epsilon"),
    "sdxl": ("sdxl", "normal", "epsilon"),
    "sdxl-refiner": ("sdxl-refiner", "normal", "epsilon"),
}
CONTROLNETS = {"controlnet-sd-1": "sd-1", "controlnet-sd-2": "sd-2", "controlnet-sdxl": "sdxl"}
TOKEN_WIDTHS = {"sd-1": [768], "sd-2": [1024], "sdxl": [768, 1280], "sdxl-refiner": [1280]}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_expected_folders_are_shipped_and_hold_only_json() -> None:
    assert shipped_config_names() == sorted([*PIPELINES, *CONTROLNETS])
    for path in SHIPPED_CONFIGS.rglob("*"):
        if path.is_file():
            assert path.suffix == ".json" or path.name == "SOURCES.md", path
            assert path.stat().st_size < 10_000, f"{path}: a config, not weights"


def test_package_data_covers_every_shipped_file() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["reconciler"]
    package = SHIPPED_CONFIGS.parents[1]
    for path in SHIPPED_CONFIGS.rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch(relative, p) and relative.count("/") == p.count("/") for p in patterns), relative


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_config_loads_and_matches_the_prober(name: str) -> None:
    import torch
    from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig

    from reconciler.load.model_loaders.common import import_class
    from reconciler.load.model_loaders.diffusers_pipeline import pipeline_components

    base, variant, prediction = PIPELINES[name]
    folder = SHIPPED_CONFIGS / name
    assert config_folder_name(BaseModelType(base), ModelVariantType(variant),
                              SchedulerPredictionType(prediction)) == name

    index = DiffusionPipeline.load_config(str(folder))
    assert issubclass(import_class("diffusers", index["_class_name"]), DiffusionPipeline)
    for component, (library, class_name) in pipeline_components(index).items():
        import_class(library, class_name)  # every class named exists
        if component in ("unet", "vae", "text_encoder", "text_encoder_2"):
            assert (folder / component / "config.json").is_file(), component
    scheduler_cls = import_class(*index["scheduler"])
    scheduler = scheduler_cls.from_pretrained(str(folder), subfolder="scheduler")
    assert scheduler.config.prediction_type == prediction

    unet_config = UNet2DConditionModel.load_config(str(folder), subfolder="unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder), subfolder="vae"))
    shapes = {k: tuple(v.shape) for k, v in ldm.unet_to_ldm(unet.state_dict(), dict(unet.config)).items()}
    detection = classify_state_dict(StateDictInfo(shapes=shapes), Path(f"{name}.safetensors"))
    assert detection.type is ModelType.Main
    assert detection.fields["base"].value == base, detection
    assert detection.fields["variant"].value == variant

    widths = []
    for encoder in ("text_encoder", "text_encoder_2"):
        if (folder / encoder / "config.json").is_file():
            widths.append(CLIPTextConfig.from_json_file(str(folder / encoder / "config.json")).hidden_size)
    assert widths == TOKEN_WIDTHS[base]
    assert unet.config.cross_attention_dim == sum(widths)
    if base.startswith("sdxl"):
        te2 = CLIPTextConfig.from_json_file(str(folder / "text_encoder_2" / "config.json"))
        time_ids = 6 if base == "sdxl" else 5  # the refiner conditions on an aesthetic score, not a target size
        expected = time_ids * unet.config.addition_time_embed_dim + te2.projection_dim
        assert unet.config.projection_class_embeddings_input_dim == expected

    assert vae.config.scaling_factor == (0.13025 if base.startswith("sdxl") else 0.18215)
    vae_shapes = {k: tuple(v.shape) for k, v in ldm.vae_to_ldm(vae.state_dict(), dict(vae.config), prefix="").items()}
    assert classify_state_dict(StateDictInfo(shapes=vae_shapes), Path("vae.safetensors")).type is ModelType.Vae


@pytest.mark.parametrize("name", sorted(CONTROLNETS))
def test_controlnet_config_loads_and_matches_the_prober(name: str) -> None:
    import torch
    from diffusers import ControlNetModel

    config = ControlNetModel.load_config(str(SHIPPED_CONFIGS / name))
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    detection = classify_state_dict(StateDictInfo(shapes=shapes), Path(f"{name}.safetensors"))
    assert detection.type is ModelType.ControlNet
    assert detection.fields["base"].value == CONTROLNETS[name]


def test_folder_names_for_every_supported_main_model() -> None:
    n = config_folder_name
    b, v, p = BaseModelType, ModelVariantType, SchedulerPredictionType
    assert n(b.StableDiffusion1, v.Normal, p.Epsilon) == "sd-1"
    assert n(b.StableDiffusion1, v.Normal, p.VPrediction) == "sd-1"  # the scheduler changes, not the model
    assert n(b.StableDiffusion2, v.Normal, p.VPrediction) == "sd-2-v"
    assert n(b.StableDiffusion2, v.Inpaint, p.VPrediction) == "sd-2-inpaint"
    assert n(b.StableDiffusionXLRefiner) == "sdxl-refiner"
    for base, variant in [("sd-1", "normal"), ("sd-1", "inpaint"), ("sd-2", "normal"), ("sd-2", "inpaint"),
                          ("sd-2", "depth"), ("sdxl", "normal"), ("sdxl-refiner", "normal")]:
        assert (SHIPPED_CONFIGS / n(BaseModelType(base), ModelVariantType(variant))).is_dir()


def test_lookup_order_record_then_load_configs_dir_then_shipped(tmp_path: Path, offline: Path) -> None:
    from reconciler.settings import load_settings

    settings = load_settings(environ={}, models_dir=tmp_path / "models")
    assert config_folders(settings, "sd-1").roots == [SHIPPED_CONFIGS / "sd-1"]

    (tmp_path / "configs" / "sd-1" / "tokenizer").mkdir(parents=True)
    (tmp_path / "mine").mkdir()
    settings = load_settings(environ={}, models_dir=tmp_path / "models", load_configs_dir=tmp_path / "configs")
    folders = config_folders(settings, "sd-1", explicit=str(tmp_path / "mine"))
    assert folders.roots == [tmp_path / "mine", tmp_path / "configs" / "sd-1", SHIPPED_CONFIGS / "sd-1"]
    assert folders.find("tokenizer") == tmp_path / "configs" / "sd-1"  # file by file
    assert folders.find("unet/config.json") == SHIPPED_CONFIGS / "sd-1"


def test_a_shipped_checkpoint_config_has_no_tokenizer_and_says_how_to_add_one(tmp_path: Path, offline: Path) -> None:
    from reconciler.errors import MissingLoadFilesError
    from reconciler.load.model_loaders.configs import find_extra_component
    from reconciler.settings import load_settings

    settings = load_settings(environ={}, models_dir=tmp_path / "models")
    folders = config_folders(settings, "sd-1")
    with pytest.raises(MissingLoadFilesError) as err:
        find_extra_component(folders, BaseModelType.StableDiffusion1, "tokenizer", "transformers", "CLIPTokenizer",
                             None)
    message = str(err.value)
    assert "<load_configs_dir>/sd-1/tokenizer" in message and "RECONCILER_LOAD_CONFIGS_DIR" in message
    assert "runwayml/stable-diffusion-v1-5/tokenizer" in message and "Nothing is downloaded" in message
