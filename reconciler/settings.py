"""AppSettings: every setting the services read, from one place.

Precedence, lowest to highest: defaults < settings file (YAML, ``--config`` /
``RECONCILER_CONFIG`` / ``./reconciler.yaml``) < ``RECONCILER_*`` environment variables <
explicit overrides (CLI flags).  Nothing else in the package reads the environment for
these values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.errors import SettingsError

ENV_PREFIX = "RECONCILER_"
DEFAULT_CONFIG_FILE = "reconciler.yaml"
STATE_DIRNAME = ".reconciler"


class AppSettings(BaseModel):
    """Settings of the reconciler and of the model-manager services under it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    models_dir: Path = Field(default=Path("models"), description="Root of installed models")
    db: Optional[Path] = Field(default=None, description="Record store file (.db SQLite, .yaml file store)")
    lock: Path = Field(default=Path("reconciler.lock"), description="Lock file written by `lock`")
    manifests: list[Path] = Field(default_factory=lambda: [Path("manifests")])
    autoimport_dir: Optional[Path] = Field(default=None, description="Folder scanned by sync_to_config")

    # endpoints (tokens are never stored here: HF_TOKEN / CIVITAI_API_TOKEN are read where used)
    hf_endpoint: Optional[str] = Field(default=None, description="Hugging Face endpoint (default: HF_ENDPOINT)")
    civitai_endpoint: str = Field(default="https://civitai.com", description="Civitai site root")

    # download queue
    max_parallel_dl: int = Field(default=5, ge=1)
    connections_per_file: int = Field(default=8, ge=1)
    min_segment_size: int = Field(default=16 * 2**20, ge=2**16)
    limit_rate: Optional[int] = Field(default=None, ge=1, description="Bytes per second for the whole queue")
    download_retries: int = Field(default=5, ge=0)
    download_timeout: float = Field(default=30.0, gt=0)
    direct_io: bool = Field(default=True, description="Write downloads with O_DIRECT where the filesystem "
                            "allows it (no page-cache copy or writeback; falls back by itself)")

    # apply
    apply_lock_timeout: float = Field(default=10.0, ge=0, description="Seconds to wait for another apply")
    max_deletions: int = Field(default=10, ge=0)

    # caches
    download_cache_size: int = Field(default=10 * 2**30, ge=0, description="Bytes kept by download_and_cache")
    ram_cache_size: float = Field(default=6.0, ge=0, description="GiB of models kept in RAM")
    vram_cache_size: float = Field(default=2.0, ge=0, description="GiB of models kept in VRAM")
    convert_cache_size: float = Field(default=10.0, ge=0, description="GiB of converted checkpoints kept")
    load_configs_dir: Optional[Path] = Field(
        default=None, description="Folder of diffusers configs for single-file loading, one subfolder per "
        "base/variant as in reconciler/load/configs (default: the configs shipped with the package)")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N, mps")
    precision: str = Field(default="auto", description="auto, float16, bfloat16, float32")

    # --- derived paths -------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        """``<models_dir>/.reconciler``: the store, temp downloads and the apply lock."""
        return self.models_dir / STATE_DIRNAME

    @property
    def db_path(self) -> Path:
        """The record store file."""
        return self.db if self.db is not None else self.state_dir / "records.db"

    @property
    def tmp_dir(self) -> Path:
        """Where partial downloads and staged copies live (and nowhere else)."""
        return self.state_dir / "tmp"

    @property
    def apply_lock_path(self) -> Path:
        """The filelock that serialises applies on one models dir."""
        return self.state_dir / "apply.lock"

    @property
    def convert_cache_dir(self) -> Path:
        """``<models_dir>/.cache/convert``: single-file checkpoints converted to diffusers."""
        return self.cache_dir / "convert"

    @property
    def models_convert_cache_path(self) -> Path:
        """The seed's name for :attr:`convert_cache_dir`."""
        return self.convert_cache_dir

    @property
    def cache_dir(self) -> Path:
        """``<models_dir>/.cache``: download_and_cache and converted checkpoints."""
        return self.models_dir / ".cache"


_ENV_FIELDS = {name: ENV_PREFIX + name.upper() for name in AppSettings.model_fields}


def _read_settings_file(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SettingsError(f"{where}: malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: settings file must be a mapping")
    return data


def load_settings(
    config_file: Optional[Path] = None,
    environ: Optional[dict[str, str]] = None,
    **overrides: Any,
) -> AppSettings:
    """Build AppSettings from defaults, a settings file, the environment and overrides.

    ``overrides`` whose value is None are ignored, so CLI options can be passed straight in.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    source = "defaults"
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    if config_file is None and Path(DEFAULT_CONFIG_FILE).is_file():
        config_file = Path(DEFAULT_CONFIG_FILE)
    if config_file is not None:
        values.update(_read_settings_file(Path(config_file)))
        source = str(config_file)
    for name, var in _ENV_FIELDS.items():
        if var in env and env[var] != "":
            raw: Any = env[var]
            if name == "manifests":
                raw = [p for p in raw.split(os.pathsep) if p]
            values[name] = raw
            source = f"{source} / environment"
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("hf_endpoint") is None and env.get("HF_ENDPOINT"):
        values["hf_endpoint"] = env["HF_ENDPOINT"]
    try:
        return AppSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"{source}: setting {field!r}: {first['msg']}") from exc


__all__ = ["AppSettings", "load_settings", "ENV_PREFIX", "STATE_DIRNAME"]
