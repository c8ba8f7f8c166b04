"""Pickled checkpoints (.ckpt/.pt/.bin): read with weights-only loading; code-carrying pickles refused.

torch is imported inside the tests that need it, never at module level.
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import pytest

from reconciler.errors import InvalidModelError
from reconciler.probe import UnsafePickleError, probe_model, scan_pickle
from reconciler.testing import models as m


def _state_dict_of(safetensors_path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(safetensors_path))


@pytest.mark.parametrize("zip_format", [True, False])
def test_main_ckpt_with_global_step(tmp_path: Path, zip_format: bool) -> None:
    import torch

    sd = _state_dict_of(m.write_main_checkpoint(tmp_path / "x.safetensors", base="sd-2"))
    path = tmp_path / "sd2.ckpt"
    torch.save({"state_dict": sd, "global_step": 220000}, path, _use_new_zipfile_serialization=zip_format)
    r = probe_model(path)
    assert (r.type.value, r.format.value, r.base.value) == ("main", "checkpoint", "sd-2")
    assert r.fields["prediction_type"].value == "epsilon"  # 220000 steps: the 512 epsilon model


def test_lora_pt_and_textual_inversion_pt(tmp_path: Path) -> None:
    import torch

    sd = _state_dict_of(m.write_lora_kohya(tmp_path / "l.safetensors", base="sdxl"))
    torch.save(sd, tmp_path / "l.pt")
    assert probe_model(tmp_path / "l.pt").base.value == "sdxl"
    # the original textual-inversion pickle: {"string_to_token": ..., "string_to_param": {"*": tensor}}
    ti = {"string_to_token": {"*": 265}, "string_to_param": {"*": torch.zeros(2, 1024)}, "name": "x", "step": 10}
    torch.save(ti, tmp_path / "ti.pt")
    r = probe_model(tmp_path / "ti.pt")
    assert (r.type.value, r.format.value, r.base.value) == ("embedding", "embedding_file", "sd-2")


def test_learned_embeds_bin_folder(tmp_path: Path) -> None:
    import torch

    (tmp_path / "ti").mkdir()
    torch.save({"<cat>": torch.zeros(768)}, tmp_path / "ti" / "learned_embeds.bin")
    r = probe_model(tmp_path / "ti")
    assert (r.type.value, r.format.value, r.base.value) == ("embedding", "embedding_folder", "sd-1")


def test_ip_adapter_bin_folder_nested_dict(tmp_path: Path) -> None:
    """InvokeAI's ip_adapter.bin nests {"image_proj": {...}, "ip_adapter": {"1.to_k_ip.weight": ...}}."""
    import torch

    folder = tmp_path / "ip"
    folder.mkdir()
    torch.save({"image_proj": {"proj.weight": torch.zeros(16, 8)},
                "ip_adapter": {"1.to_k_ip.weight": torch.zeros(4, 2048)}}, folder / "ip_adapter.bin")
    (folder / "image_encoder.txt").write_text("InvokeAI/ip_adapter_sdxl_image_encoder\n")
    r = probe_model(folder)
    assert (r.type.value, r.format.value, r.base.value) == ("ip_adapter", "invokeai", "sdxl")


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_with_code_is_refused_and_not_run(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = m.write_malicious_pickle(tmp_path / "evil.ckpt", marker, zip_format=zip_format)
    with pytest.raises(UnsafePickleError, match=r"evil\.ckpt.*builtins\.open"):
        probe_model(path)
    with pytest.raises(InvalidModelError):  # overrides do not make it acceptable
        probe_model(path, {"type": "main", "format": "checkpoint", "base": "sd-1"})
    assert not marker.exists()


def test_stack_global_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": Evil()}, protocol=4))  # protocol 4 uses STACK_GLOBAL
    import os

    with pytest.raises(UnsafePickleError, match=re.escape(f"imports {os.system.__module__}.system,")):
        scan_pickle(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_what_the_static_scan_lets_through_still_loads_as_weights_only(
        tmp_path: Path, zip_format: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second defence is reached: the static scan accepts every ``torch._utils._rebuild_*``
    name, torch's weights-only unpickler only its own list.  ``_rebuild_xla_tensor`` (a real
    torch function, here replaced by a recorder) passes the scan, is refused by
    ``torch.load(weights_only=True)``, and never runs; a plain ``torch.load`` would run it."""
    import torch
    import torch._utils

    calls: list[tuple] = []

    def recorder(*args):
        calls.append(args)
        return torch.zeros(1)

    recorder.__module__ = "torch._utils"
    recorder.__name__ = recorder.__qualname__ = "_rebuild_xla_tensor"
    monkeypatch.setattr(torch._utils, "_rebuild_xla_tensor", recorder)

    class Smuggled:
        def __reduce__(self):
            return (torch._utils._rebuild_xla_tensor, ("data", torch.float32, "cpu", False))

    path = tmp_path / "smuggled.ckpt"
    torch.save({"state_dict": {"model.w": Smuggled()}, "global_step": 1}, path,
               _use_new_zipfile_serialization=zip_format)
    scan_pickle(path)  # the first defence lets it through
    with pytest.raises(UnsafePickleError, match=re.escape(
            f"{path}: refused: torch's weights-only loader rejected it: "
            "Unsupported global: GLOBAL torch._utils._rebuild_xla_tensor was not an allowed global by default")):
        probe_model(path)
    with pytest.raises(UnsafePickleError, match="weights-only loader rejected it"):  # overrides change nothing
        probe_model(path, {"type": "main", "format": "checkpoint", "base": "sd-1"})
    assert calls == [], "the refused pickle ran a function"
    torch.load(path, weights_only=False)  # without the second defence it would have run
    assert calls == [("data", torch.float32, "cpu", False)]


def test_torch_save_output_passes_the_static_scan(tmp_path: Path) -> None:
    import torch

    torch.save({"a": torch.zeros(2, dtype=torch.float16), "b": torch.nn.Parameter(torch.ones(3))},
               tmp_path / "ok.pt")
    scan_pickle(tmp_path / "ok.pt")


def test_probe_package_does_not_import_torch() -> None:
    import subprocess

    code = ("import sys, reconciler.probe, reconciler.testing.models; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
