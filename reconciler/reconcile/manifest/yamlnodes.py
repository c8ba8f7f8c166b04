"""YAML to located data: node trees to ``_Map``/``_Seq``/scalars that remember where each was written.

Positions are needed for every error, including the semantic ones found after validation
(duplicate names, missing local files), so the loader works from YAML *nodes* (which carry
``start_mark``), not from constructed Python objects.  ruamel.yaml's pure-Python parser takes
~1.5 s on a 2,000-entry manifest (its C extension is not a dependency), far over the budget,
so the node tree comes from libyaml through PyYAML's ``CSafeLoader`` when that is importable
(PyYAML arrives with huggingface_hub) and from ruamel.yaml otherwise.  When libyaml rejects a
document, ruamel.yaml parses it again: its verdict (and its message) is the one reported, so
the error text does not depend on which parser is installed.  Scalars are resolved here with
the YAML 1.2 core schema (``yes``/``no``/``on``/``off`` stay strings, as ruamel reads them),
whichever parser composed them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reconciler.errors import ManifestError

_PLAIN = "?"  # tag of a plain scalar left for _Builder to resolve (YAML 1.2 core schema)

try:  # libyaml through PyYAML: ~15x faster than ruamel's pure-Python parser
    import yaml as _pyyaml
    from yaml.constructor import BaseConstructor as _BaseConstructor
    from yaml.cyaml import CParser as _CParser
    from yaml.nodes import MappingNode as _MappingNode
    from yaml.nodes import ScalarNode as _ScalarNode
    from yaml.resolver import BaseResolver as _BaseResolver

    class _FastResolver(_BaseResolver):
        """Leaves plain scalars to _Builder (PyYAML's own resolver is YAML 1.1, and slower).

        Only called for nodes without an explicit tag, so ``!!str 1`` stays a string."""

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is _ScalarNode:
                return _PLAIN if implicit[0] else "tag:yaml.org,2002:str"
            return "tag:yaml.org,2002:map" if kind is _MappingNode else "tag:yaml.org,2002:seq"

    class _FastLoader(_CParser, _BaseConstructor, _FastResolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            _BaseConstructor.__init__(self)
            _FastResolver.__init__(self)

    _FAST_LOADER: Any = _FastLoader
except (ImportError, AttributeError):  # pragma: no cover - no PyYAML, or PyYAML without libyaml
    _pyyaml = None  # type: ignore[assignment]
    _FAST_LOADER = None


class _Map(dict):  # type: ignore[type-arg]
    """A mapping that remembers where it, its keys and its values were written (1-based)."""

    __slots__ = ("pos", "keys_at", "values_at")

    def __init__(self, pos: tuple[int, int]) -> None:
        super().__init__()
        self.pos = pos
        self.keys_at: dict[Any, tuple[int, int]] = {}
        self.values_at: dict[Any, tuple[int, int]] = {}


class _Seq(list):  # type: ignore[type-arg]
    """A sequence that remembers where it and its items were written (1-based)."""

    __slots__ = ("pos", "items_at")

    def __init__(self, pos: tuple[int, int]) -> None:
        super().__init__()
        self.pos = pos
        self.items_at: list[tuple[int, int]] = []


_YAML_TAG = "tag:yaml.org,2002:"
_STR_TAG = _YAML_TAG + "str"
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_FLOAT_SPECIAL = {
    ".inf": float("inf"),
    "+.inf": float("inf"),
    "-.inf": float("-inf"),
    ".nan": float("nan"),
}


def _resolve_plain(value: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema."""
    if not value or value[0] not in "0123456789+-.~nNtTfF":
        return None if not value else value
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        return int(value)
    if _INT_OCT.fullmatch(value):
        return int(value[2:], 8)
    if _INT_HEX.fullmatch(value):
        return int(value[2:], 16)
    if _FLOAT.fullmatch(value):
        return float(value)
    return _FLOAT_SPECIAL.get(value.lower(), value)


def _pos(node: Any) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _tag(node: Any) -> str:
    tag = node.tag
    if type(tag) is str:
        return tag
    return str(getattr(tag, "value", tag) or "")  # ruamel's Tag objects


class _Builder:
    """Turns a composed node tree into _Map/_Seq/scalars, YAML 1.2 core schema."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.active: set[int] = set()

    def error(self, message: str, pos: tuple[int, int]) -> ManifestError:
        return ManifestError(message, self.file, *pos)

    def build(self, node: Any) -> Any:
        kind = type(node).__name__
        if kind == "ScalarNode":
            return self.scalar(node)
        if id(node) in self.active:
            raise self.error("recursive YAML alias", _pos(node))
        self.active.add(id(node))
        try:
            if kind == "MappingNode":
                return self.mapping(node)
            if kind == "SequenceNode":
                seq = _Seq(_pos(node))
                for item in node.value:
                    seq.append(self.build(item))
                    seq.items_at.append(_pos(item))
                return seq
        finally:
            self.active.discard(id(node))
        raise self.error(f"unsupported YAML node {kind}", _pos(node))  # pragma: no cover

    def mapping(self, node: Any) -> _Map:
        out = _Map(_pos(node))
        merged: list[_Map] = []
        for key_node, value_node in node.value:
            if _tag(key_node) == _YAML_TAG + "merge" or (key_node.value == "<<" and _tag(key_node) == _PLAIN):
                value = self.build(value_node)
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(m, _Map) for m in sources):
                    raise self.error(
                        "a '<<' merge key needs a mapping or a list of mappings", _pos(value_node)
                    )
                merged.extend(sources)
                continue
            if type(key_node).__name__ != "ScalarNode":
                raise self.error("mapping keys must be plain strings", _pos(key_node))
            key = self.scalar(key_node)
            if not isinstance(key, str):
                raise self.error(
                    f"mapping key {key_node.value!r} must be a string (quote it)", _pos(key_node)
                )
            if key in out:
                first = out.keys_at[key]
                raise self.error(
                    f"duplicate key {key!r} (first at line {first[0]}, column {first[1]})", _pos(key_node)
                )
            out[key] = self.build(value_node)
            out.keys_at[key] = _pos(key_node)
            # an empty value has no place of its own (parsers disagree on it): use its key's
            empty = out[key] is None and not value_node.value and type(value_node).__name__ == "ScalarNode"
            out.values_at[key] = out.keys_at[key] if empty else _pos(value_node)
        for source in merged:  # YAML merge keys: explicit keys win, earlier merges win
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    out.keys_at[key] = source.keys_at[key]
                    out.values_at[key] = source.values_at[key]
        return out

    def scalar(self, node: Any) -> Any:
        value: str = node.value
        tag = _tag(node)
        if node.style or tag == _STR_TAG:  # quoted or block scalars are strings
            return value
        if tag == _PLAIN:
            return _resolve_plain(value)
        if tag == _YAML_TAG + "null":
            return None if value in _NULLS else value
        if tag == _YAML_TAG + "bool":
            return True if value in _TRUE else False if value in _FALSE else value
        if tag == _YAML_TAG + "int":
            if _INT.fullmatch(value):
                return int(value)
            if _INT_OCT.fullmatch(value):
                return int(value[2:], 8)
            if _INT_HEX.fullmatch(value):
                return int(value[2:], 16)
            return value
        if tag == _YAML_TAG + "float":
            if _FLOAT.fullmatch(value):
                return float(value)
            return _FLOAT_SPECIAL.get(value.lower(), value)
        if tag == _YAML_TAG + "timestamp":
            return value
        raise self.error(f"unsupported YAML tag {tag!r}", _pos(node))


def _yaml_error(exc: Exception, file: Path, text: str) -> ManifestError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"malformed YAML: {problem}"
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        message += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    message = " ".join(message.split())
    if mark is not None:
        return ManifestError(message, file, mark.line + 1, mark.column + 1)
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return ManifestError(message, file, line, column)
    return ManifestError(message, file)


def _compose_all(text: str, file: Path) -> list[Any]:
    """Node trees of every document of ``text`` (fast parser first; ruamel decides errors)."""
    if _FAST_LOADER is not None:
        try:
            return list(_pyyaml.compose_all(text, Loader=_FAST_LOADER))
        except _pyyaml.YAMLError:
            pass  # ruamel's verdict and message are the reference; ask it
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError as RuamelYAMLError

    try:
        return list(YAML(typ="safe", pure=True).compose_all(text))
    except RuamelYAMLError as exc:
        raise _yaml_error(exc, file, text) from None
