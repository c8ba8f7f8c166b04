"""Manifest fields win over the prober, and each disagreement is noted."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import InvalidModelConfigException
from reconciler.probe import probe_model
from reconciler.taxonomy import (
    BaseModelType,
    ModelFormat,
    ModelType,
    ModelVariantType,
    SchedulerPredictionType,
)
from reconciler.testing import models as m


def test_type_override_wins_and_is_noted(tmp_path: Path) -> None:
    path = m.write_lora_kohya(tmp_path / "x.safetensors")
    r = probe_model(path, {"type": "vae"})
    assert (r.type, r.format, r.base) == (ModelType.Vae, ModelFormat.Checkpoint, BaseModelType.StableDiffusion1)
    assert r.notes == ["manifest sets type=vae; the files look like lora"]
    r.to_config(name="x", path=path)


def test_base_override_wins_and_is_noted(tmp_path: Path) -> None:
    path = m.write_main_checkpoint(tmp_path / "x.safetensors", base="sd-1")
    r = probe_model(path, {"base": "sdxl"})
    assert r.base is BaseModelType.StableDiffusionXL
    assert r.notes == ["manifest sets base=sdxl; the files look like sd-1"]


def test_agreeing_overrides_give_no_notes_and_aliases_work(tmp_path: Path) -> None:
    path = m.write_main_checkpoint(tmp_path / "x.safetensors", base="sd-2")
    r = probe_model(path, {"model_type": "main", "base_model": BaseModelType.StableDiffusion2,
                           "model_format": "checkpoint"})
    assert r.notes == []
    assert r.fields["prediction_type"] is SchedulerPredictionType.VPrediction


def test_nested_config_mapping_and_class_fields(tmp_path: Path) -> None:
    folder = m.write_diffusers_pipeline(tmp_path / "p", base="sd-2")
    r = probe_model(folder, {"config": {"variant": "inpaint", "prediction_type": "epsilon"},
                             "description": "house model", "tags": ["a"]})
    assert r.fields["variant"] is ModelVariantType.Inpaint
    assert r.fields["prediction_type"] is SchedulerPredictionType.Epsilon
    assert r.fields["description"] == "house model"
    assert sorted(r.notes) == ["manifest sets prediction_type=epsilon; the files look like v_prediction",
                               "manifest sets variant=inpaint; the files look like normal"]
    cfg = r.to_config(name="p", path=folder)
    assert cfg.tags == ["a"]


def test_checkpoint_config_path_string_is_a_field(tmp_path: Path) -> None:
    path = m.write_main_checkpoint(tmp_path / "x.safetensors")
    r = probe_model(path, {"config": "my.yaml"})
    assert r.fields["config"] == "my.yaml"


def test_field_the_class_lacks_is_ignored_with_a_note(tmp_path: Path) -> None:
    path = m.write_lora_kohya(tmp_path / "x.safetensors")
    r = probe_model(path, {"variant": "inpaint"})
    assert "variant" not in r.fields
    assert any("does not have; ignored" in n for n in r.notes)


def test_bad_enum_value(tmp_path: Path) -> None:
    path = m.write_lora_kohya(tmp_path / "x.safetensors")
    with pytest.raises(InvalidModelConfigException, match="base='sd-9'"):
        probe_model(path, {"base": "sd-9"})


def test_impossible_type_format_pair(tmp_path: Path) -> None:
    path = m.write_lora_kohya(tmp_path / "x.safetensors")
    with pytest.raises(InvalidModelConfigException):
        probe_model(path, {"type": "vae", "format": "lycoris"})


def test_type_override_on_folder_picks_a_folder_format(tmp_path: Path) -> None:
    folder = m.write_vae_diffusers(tmp_path / "v")
    r = probe_model(folder, {"type": "controlnet", "base": "sd-1"})
    assert (r.type, r.format) == (ModelType.ControlNet, ModelFormat.Diffusers)
    assert r.notes == ["manifest sets type=controlnet; the files look like vae"]
