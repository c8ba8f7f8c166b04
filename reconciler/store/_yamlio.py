"""YAML text <-> plain data for the file store, as fast as the installed libraries allow.

ruamel.yaml (a declared dependency) is pure Python here and takes ~0.8 s to load and dump
100 records, which makes a read-modify-write store crawl.  PyYAML (a dependency of
huggingface_hub, so normally present) with libyaml is ~25x faster and is preferred; PyYAML
without libyaml comes next, ruamel last.  All three are used with YAML 1.1 rules, so a file
written by one reads back identically with another (``on``/``yes``/``no`` are quoted as
strings when written, read as booleans when bare).  Only plain data is read or written.
"""

from __future__ import annotations

import io
from typing import Any

try:  # pragma: no cover - depends on the environment
    import yaml as _pyyaml

    _LOADER: Any = getattr(_pyyaml, "CSafeLoader", _pyyaml.SafeLoader)
    _DUMPER: Any = getattr(_pyyaml, "CSafeDumper", _pyyaml.SafeDumper)
except ImportError:  # pragma: no cover
    _pyyaml = None  # type: ignore[assignment]


class YAMLParseError(ValueError):
    """The text is not YAML this store can read."""


def _ruamel() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 1)  # the same scalar rules as PyYAML
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.width = 120
    return yaml


def load(text: str) -> Any:
    """Parse YAML text (safe: plain data only)."""
    if _pyyaml is not None:
        try:
            return _pyyaml.load(text, Loader=_LOADER)
        except _pyyaml.YAMLError as exc:
            raise YAMLParseError(" ".join(str(exc).split())) from exc
    from ruamel.yaml.error import YAMLError

    try:
        return _ruamel().load(text)
    except YAMLError as exc:
        raise YAMLParseError(" ".join(str(exc).split())) from exc


def dump(data: Any) -> str:
    """Block-style YAML for plain data, keys in insertion order."""
    if _pyyaml is not None:
        return _pyyaml.dump(data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    out = io.StringIO()
    _ruamel().dump(data, out)
    return out.getvalue()


__all__ = ["YAMLParseError", "dump", "load"]
