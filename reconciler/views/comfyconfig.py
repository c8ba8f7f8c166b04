"""ComfyUI ``link: config``: one section of ``<root>/extra_model_paths.yaml`` per view.

ComfyUI (``utils/extra_config.py``) reads each top-level section as ``base_path`` plus folder
keys whose values are *strings* split on newlines, each line a folder relative to
``base_path``; a YAML list is not read.  So a view's section is::

    reconciler_<view>:
      base_path: /srv/models
      checkpoints: |
        sd-1/main
      loras: |
        sd-1/lora
        sdxl/lora

The rest of the file (other sections, comments) is kept as it was (ruamel round trip).  The
section is recorded as a view link with mode ``config`` and path ``<file>#<section>``; its
content is recorded too, so prune removes the section only while it is still what was written.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Optional

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

CONFIG_FILE = "extra_model_paths.yaml"
MODE = "config"
TMP_SUFFIX = ".reconciler-tmp"


def section_name(view: str) -> str:
    """The section a view owns."""
    return f"reconciler_{view}"


def link_path(root: Path, view: str) -> str:
    """The recorded path of a view's section: ``<file>#<section>``."""
    return f"{root / CONFIG_FILE}#{section_name(view)}"


def split(path: str) -> tuple[Path, str]:
    file, _, section = path.rpartition("#")
    return Path(file), section


def content_text(content: dict[str, str]) -> str:
    """The canonical text of a section's content (what is recorded and compared)."""
    return json.dumps(content, sort_keys=True)


def section_content(models_dir: Path, folders: dict[str, set[str]]) -> dict[str, str]:
    """``base_path`` and each folder key's newline-separated folders (relative to base_path)."""
    content = {"base_path": str(models_dir)}
    for key in sorted(folders):
        if folders[key]:
            content[key] = "".join(f"{f}\n" for f in sorted(folders[key]))
    return content


def _yaml(indent: int = 4, block_seq_indent: int = 0) -> YAML:
    yaml = YAML()  # round trip: comments and order kept
    yaml.preserve_quotes = True
    yaml.indent(mapping=indent, sequence=indent + block_seq_indent, offset=block_seq_indent)
    yaml.width = 4096
    return yaml


def _load_indented(file: Path) -> tuple[Any, int, int]:
    """The file's data and its indentation (ComfyUI's example file indents by 4: the default)."""
    if not file.exists():
        return None, 4, 0
    text = file.read_text(encoding="utf-8")
    _data, indent, block_seq = load_yaml_guess_indent(text)
    indent = indent or 4
    block_seq = block_seq or 0
    return _yaml(indent, block_seq).load(text), indent, block_seq


def _load(file: Path) -> Any:
    return _load_indented(file)[0]


def read_section(path: str) -> Optional[dict[str, str]]:
    """The section's content as plain strings; None when the file or the section is missing
    (or the file is not a mapping)."""
    file, section = split(path)
    data = _load(file)
    if not isinstance(data, dict) or section not in data:
        return None
    value = data[section]
    if not isinstance(value, dict):
        return {"": str(value)}
    return {str(k): str(v) for k, v in value.items()}


def state(path: str, recorded_text: str) -> str:
    """``in_sync``, ``missing`` or ``replaced`` (the section was edited by hand)."""
    try:
        current = read_section(path)
    except Exception:  # noqa: BLE001 - a file broken by hand: the section is not what was written
        return "replaced"
    if current is None:
        return "missing"
    return "in_sync" if content_text(current) == recorded_text else "replaced"


def _dump(file: Path, data: Any, indent: int, block_seq: int) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    _yaml(indent, block_seq).dump(data, buf)
    tmp = file.with_name(f".{file.name}{TMP_SUFFIX}")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    if file.exists():
        os.chmod(tmp, file.stat().st_mode & 0o7777)
    os.replace(tmp, file)


def write_section(path: str, content: dict[str, str]) -> None:
    """Write (or rewrite) the section, keeping the rest of the file."""
    file, section = split(path)
    data, indent, block_seq = _load_indented(file)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ValueError(f"{file} is not a YAML mapping; its section {section} is not written")
    old = data.get(section)
    body = old if isinstance(old, CommentedMap) else CommentedMap()
    for key in [k for k in body if k not in content]:
        del body[key]
    for key, value in content.items():
        body[key] = LiteralScalarString(value) if key != "base_path" else value
    data[section] = body  # rewritten in place: comments after the section stay with it
    _dump(file, data, indent, block_seq)


def remove_section(path: str) -> None:
    """Remove the section; the file goes too when nothing else is left in it."""
    file, section = split(path)
    data, indent, block_seq = _load_indented(file)
    if not isinstance(data, dict) or section not in data:
        return
    del data[section]
    if not data and not file.read_text(encoding="utf-8").lstrip().startswith("#"):
        file.unlink()
        return
    _dump(file, data, indent, block_seq)


__all__ = ["CONFIG_FILE", "MODE", "content_text", "link_path", "read_section", "remove_section",
           "section_content", "section_name", "state", "write_section"]
