"""Files that are not models are refused with a message naming them; unknown models ask for a manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reconciler.errors import InvalidModelError, SourceNotFoundError
from reconciler.probe import ModelNotRecognizedError, probe_model, read_safetensors_header
from reconciler.testing import models as m

FULL = {"type": "lora", "format": "lycoris", "base": "sd-1"}


@pytest.mark.parametrize(("kind", "message"), [
    ("empty", "empty (0 bytes)"),
    ("text", "text file"),
    ("html", "HTML page"),
    ("truncated_header", "truncated"),
    ("truncated_data", "truncated: tensor data"),
    ("bad_header", "truncated"),
])
@pytest.mark.parametrize("overrides", [None, FULL])
def test_not_a_model_is_refused_even_with_overrides(tmp_path: Path, kind, message, overrides) -> None:
    path = m.write_not_a_model(tmp_path / "model.safetensors", kind)
    with pytest.raises(InvalidModelError) as info:
        probe_model(path, overrides)
    assert str(path) in str(info.value) and message in str(info.value)
    assert not isinstance(info.value, ModelNotRecognizedError)


def test_html_under_a_ckpt_name(tmp_path: Path) -> None:
    path = m.write_not_a_model(tmp_path / "model.ckpt", "html")
    with pytest.raises(InvalidModelError, match="HTML"):
        probe_model(path)


def test_garbage_header_json(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    body = b"{not json at all}"
    path.write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(InvalidModelError, match="not JSON"):
        read_safetensors_header(path)
    with pytest.raises(InvalidModelError, match=str(path)):
        probe_model(path)


def test_header_entry_with_wrong_byte_count(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    body = b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}'
    path.write_bytes(len(body).to_bytes(8, "little") + body + b"\0" * 8)
    with pytest.raises(InvalidModelError, match="do not hold"):
        probe_model(path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="nope"):
        probe_model(tmp_path / "nope.safetensors")


def test_random_bytes_cannot_be_told(tmp_path: Path) -> None:
    path = m.write_not_a_model(tmp_path / "blob.bin", "garbage")
    with pytest.raises(ModelNotRecognizedError, match="cannot tell the type of"):
        probe_model(path)


def test_unknown_safetensors_names_the_file_and_asks_for_type_and_base(tmp_path: Path) -> None:
    path = m.write_safetensors(tmp_path / "llm.safetensors",
                               {"model.layers.0.mlp.up_proj.weight": np.zeros((4, 4), np.float16)})
    with pytest.raises(ModelNotRecognizedError) as info:
        probe_model(path)
    assert str(info.value).startswith(
        f"cannot tell the type of {path}; set `type` and `base` in the manifest")


def test_unrecognised_model_with_full_overrides_is_accepted(tmp_path: Path) -> None:
    path = m.write_safetensors(tmp_path / "odd.safetensors", {"weird": np.zeros((3, 3), np.float32)})
    r = probe_model(path, {"type": "vae", "format": "checkpoint", "base": "sd-2"})
    assert (r.type.value, r.format.value, r.base.value) == ("vae", "checkpoint", "sd-2")
    assert r.notes == []
    r.to_config(name="odd", path=path)


def test_partial_overrides_do_not_hide_an_unrecognised_model(tmp_path: Path) -> None:
    path = m.write_safetensors(tmp_path / "odd.safetensors", {"weird": np.zeros((3, 3), np.float32)})
    with pytest.raises(ModelNotRecognizedError):
        probe_model(path, {"type": "vae", "base": "sd-2"})


def test_unknown_width_names_the_field(tmp_path: Path) -> None:
    t = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight":
         np.zeros((1, 512), np.float16)}
    path = m.write_safetensors(tmp_path / "l.safetensors", t)
    with pytest.raises(ModelNotRecognizedError, match=r"cannot tell the base of .*LoRA token width 512.*set `base`"):
        probe_model(path)
    assert probe_model(path, {"base": "sd-1"}).base.value == "sd-1"


def test_empty_folder_and_unknown_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotRecognizedError, match="cannot tell the type of"):
        probe_model(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ModelNotRecognizedError, match="LlamaForCausalLM"):
        probe_model(tmp_path / "other")


def test_broken_json_config_is_refused(tmp_path: Path) -> None:
    folder = m.write_vae_diffusers(tmp_path / "vae")
    (folder / "config.json").write_text("<html>oops</html>")
    with pytest.raises(InvalidModelError, match="config.json"):
        probe_model(folder)


def test_truncated_weights_inside_a_folder(tmp_path: Path) -> None:
    folder = m.write_lora_diffusers_folder(tmp_path / "lora")
    w = folder / "pytorch_lora_weights.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    with pytest.raises(InvalidModelError, match="pytorch_lora_weights"):
        probe_model(folder)
