"""Writing values into manifests exactly: YAML flow text for any JSON-like value."""

from __future__ import annotations

from typing import Any


def yq(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back as exactly ``text``: printable
    characters as they are, everything else (line breaks, NUL, BOM, ...) escaped."""
    out = ['"']
    for ch in text:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def flow(value: Any) -> str:
    """A JSON-like value (no NaN or infinities) as one line of YAML flow text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return yq(value)
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yq(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no flow text for {type(value).__name__}")


HEADER = "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata:\n  name: hostile\n"


def entry_manifest(name: str, source: str = "../files/lora.safetensors") -> str:
    """One model named ``name`` (its value at line 7, column 13)."""
    return HEADER + f"spec:\n  models:\n    - name: {yq(name)}\n      source: {yq(source)}\n"
