"""YAML to located data: parser events to ``_Map``/``_Seq``/scalars that remember where each was written.

Positions are needed for every error, including the semantic ones found after validation
(duplicate names, missing local files), so the loader builds its data from the parser's
*events* (which carry ``start_mark``), not from constructed Python objects.  ruamel.yaml's
pure-Python parser takes ~1 s on a 2,000-entry manifest (its C extension is not a dependency),
far over the budget, so the events come from libyaml through PyYAML's ``CParser`` when that is
importable (PyYAML arrives with huggingface_hub) and from ruamel.yaml otherwise.  When libyaml
rejects a document, ruamel.yaml parses it again: its verdict (and its message) is the one
reported, so the error text does not depend on which parser is installed (documents over
``REPARSE_LIMIT_BYTES`` keep libyaml's message: ruamel would need seconds to reach it).
Scalars are resolved here with the YAML 1.2 core schema (``yes``/``no``/``on``/``off`` stay
strings, as ruamel reads them), whichever parser produced them.

Hostile input
-------------
A manifest is untrusted text, so the build is one loop over the events with an explicit
stack (no recursion, whatever the nesting) and three limits, each refused as a one-line
:class:`~reconciler.errors.ManifestError` naming the file and the place, before anything is
built past them:

- ``MAX_MANIFEST_BYTES`` (8 MiB) per file, checked while reading (the loader);
- ``MAX_DEPTH`` (64) levels of nested mappings and sequences, aliases counted where they
  are used (a manifest needs about 6; libyaml's own stop at 1,000 levels, which its scanner
  can reach before the events do, is reported as the same error);
- ``MAX_NODES`` (1,000,000) nodes per file *after alias expansion*: an alias counts the
  whole subtree it names, so a "billion laughs" document is refused as soon as its anchors
  multiply past the limit, without expanding anything (a 2,000-model manifest has ~22,000).

An alias reuses the value its anchor built (no copy), and a recursive alias is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from reconciler.errors import ManifestError

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
"""Largest manifest file read (bytes)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences, aliases expanded."""
MAX_NODES = 1_000_000
"""Most YAML nodes (scalars, mappings, sequences) per file, aliases expanded."""
REPARSE_LIMIT_BYTES = 1024 * 1024
"""Documents libyaml rejects are parsed again by ruamel.yaml for its message up to this size."""

try:  # libyaml through PyYAML: ~15x faster than ruamel's pure-Python parser
    import yaml as _pyyaml
    from yaml.cyaml import CParser as _CParser

    _FAST_LOADER: Any = _CParser
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
_MERGE_TAG = _YAML_TAG + "merge"
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


class _Full(Exception):
    pass


def quoted_short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, without building the whole repr
    (a value in a message may be a 5 MB string or a mapping of a million nodes)."""
    parts: list[str] = []
    left = [limit]

    def emit(text: str) -> None:
        if len(text) > left[0]:
            parts.append(text[: max(left[0], 0)])
            raise _Full
        parts.append(text)
        left[0] -= len(text)

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            emit("{")
            for i, (key, val) in enumerate(item.items()):
                emit(", " if i else "")
                walk(key)
                emit(": ")
                walk(val)
            emit("}")
        elif isinstance(item, list):
            emit("[")
            for i, val in enumerate(item):
                emit(", " if i else "")
                walk(val)
            emit("]")
        elif isinstance(item, str):
            emit(repr(item[: left[0] + 1]) if len(item) > left[0] else repr(item))
        else:
            emit(repr(item))

    try:
        walk(value)
    except _Full:
        size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
        return "".join(parts) + "..." + size
    return "".join(parts)


MAX_MESSAGE = 500
"""Longest error message (characters) before it is cut: values in messages are clipped by
:func:`quoted_short`; this catches text from elsewhere (a source parser quoting a 5 MB string)."""


def clip_message(message: str) -> str:
    """``message`` on one line, at most about MAX_MESSAGE characters."""
    message = " ".join(message[: MAX_MESSAGE * 4].split())
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "... (cut)"


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


def _pos(item: Any) -> tuple[int, int]:
    """1-based (line, column) where an event (or node) starts."""
    return item.start_mark.line + 1, item.start_mark.column + 1


def _tag(event: Any) -> Optional[str]:
    tag = event.tag
    if tag is None or type(tag) is str:
        return tag
    return str(getattr(tag, "value", tag) or "") or None  # ruamel's Tag objects


class _Scalar:
    """A scalar as written: what a mapping key and the value resolution need."""

    __slots__ = ("value", "tag", "plain", "quoted", "pos")

    def __init__(self, event: Any) -> None:
        self.value: str = event.value
        tag = _tag(event)
        implicit = event.implicit
        self.plain = tag in (None, "!") and bool(implicit and implicit[0])
        self.quoted = bool(event.style)  # quoted or block scalars are strings
        self.tag = None if tag in (None, "!") else tag
        self.pos = _pos(event)


class _Frame:
    """An open mapping or sequence while its events arrive."""

    __slots__ = ("value", "anchor", "start_total", "height", "key", "merged", "is_map")

    def __init__(self, value: _Map | _Seq, anchor: Optional[str], start_total: int) -> None:
        self.value = value
        self.anchor = anchor
        self.start_total = start_total
        self.height = 1
        self.is_map = type(value) is _Map
        self.key: Any = None  # a mapping's pending key: None (expecting one), _MERGE, or (key, pos)
        self.merged: list[_Map] = []


_MERGE = object()


class _Builder:
    """Turns a parser's events into _Map/_Seq/scalars (YAML 1.2 core schema), within the limits.

    One builder per file: ``MAX_NODES`` counts every document of it.
    """

    def __init__(self, file: Path, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
        self.file = file
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.total = 0

    def error(self, message: str, pos: tuple[int, int]) -> ManifestError:
        return ManifestError(clip_message(message), self.file, *pos)

    def documents(self, events: Iterable[Any]) -> list[tuple[Any, tuple[int, int]]]:
        """(data, position) of every document the events hold."""
        out: list[tuple[Any, tuple[int, int]]] = []
        stack: list[_Frame] = []
        # anchor -> (value, position, expanded size, height, the scalar when it is one)
        anchors: dict[str, tuple[Any, tuple[int, int], int, int, Optional[_Scalar]]] = {}
        open_anchors: dict[str, tuple[int, int]] = {}
        for event in events:
            kind = type(event).__name__
            if kind == "ScalarEvent":
                self.count(1, event)
                scalar = _Scalar(event)
                value = self.scalar(scalar)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, scalar.pos, 1, 0, scalar)
                if stack:
                    self.add(stack[-1], value, scalar.pos, 0, scalar)
                else:
                    out.append((value, scalar.pos))
            elif kind in ("MappingStartEvent", "SequenceStartEvent"):
                pos = _pos(event)
                if stack and stack[-1].is_map and stack[-1].key is None:
                    raise self.error("mapping keys must be plain strings", pos)
                if len(stack) >= self.max_depth:
                    raise self.error(f"nested deeper than {self.max_depth} levels", pos)
                self.count(1, event)
                value = _Map(pos) if kind == "MappingStartEvent" else _Seq(pos)
                stack.append(_Frame(value, event.anchor, self.total - 1))
                if event.anchor is not None:
                    open_anchors[event.anchor] = pos
            elif kind in ("MappingEndEvent", "SequenceEndEvent"):
                frame = stack.pop()
                done = frame.value
                if frame.is_map:
                    self.apply_merges(frame)
                if frame.anchor is not None:
                    open_anchors.pop(frame.anchor, None)
                    anchors[frame.anchor] = (done, done.pos, self.total - frame.start_total, frame.height, None)
                if stack:
                    self.add(stack[-1], done, done.pos, frame.height, None)
                else:
                    out.append((done, done.pos))
            elif kind == "AliasEvent":
                pos = _pos(event)
                name = event.anchor
                if name in open_anchors:
                    raise self.error("recursive YAML alias", open_anchors[name])
                if name not in anchors:
                    raise self.error(f"malformed YAML: found undefined alias {quoted_short(name)}", pos)
                value, at, size, height, scalar = anchors[name]
                if len(stack) + height > self.max_depth:
                    raise self.error(f"nested deeper than {self.max_depth} levels (through an alias)", pos)
                self.count(size, event)
                if stack:
                    if height and stack[-1].is_map and stack[-1].key is None:
                        raise self.error("mapping keys must be plain strings", pos)
                    self.add(stack[-1], value, at, height, scalar)
                else:
                    out.append((value, at))
            elif kind == "DocumentStartEvent":
                anchors.clear()
                open_anchors.clear()
        return out

    def count(self, nodes: int, event: Any) -> None:
        self.total += nodes
        if self.total > self.max_nodes:
            raise self.error(
                f"more than {self.max_nodes:,} YAML nodes (aliases expanded); refusing to read further",
                _pos(event),
            )

    def add(self, frame: _Frame, value: Any, pos: tuple[int, int], height: int,
            scalar: Optional[_Scalar]) -> None:
        """Put a finished value (with its position) into the open collection ``frame``."""
        if height >= frame.height:
            frame.height = height + 1
        target = frame.value
        if not frame.is_map:
            target.append(value)
            target.items_at.append(pos)  # type: ignore[union-attr]
            return
        assert isinstance(target, _Map)
        key = frame.key
        if key is None:  # this value is a key
            assert scalar is not None  # collections as keys are refused where they start
            if scalar.tag == _MERGE_TAG or (scalar.plain and scalar.value == "<<"):
                frame.key = _MERGE
                return
            if not isinstance(value, str):
                raise self.error(f"mapping key {quoted_short(scalar.value)} must be a string (quote it)", pos)
            if value in target:
                first = target.keys_at[value]
                raise self.error(
                    f"duplicate key {quoted_short(value)} (first at line {first[0]}, column {first[1]})", pos
                )
            frame.key = (value, pos)
            return
        frame.key = None
        if key is _MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(m, _Map) for m in sources):
                raise self.error("a '<<' merge key needs a mapping or a list of mappings", pos)
            frame.merged.extend(sources)
            return
        name, key_pos = key
        target[name] = value
        target.keys_at[name] = key_pos
        # an empty value has no place of its own (parsers disagree on it): use its key's
        empty = value is None and scalar is not None and not scalar.value
        target.values_at[name] = key_pos if empty else pos

    def apply_merges(self, frame: _Frame) -> None:
        """YAML merge keys: explicit keys win, earlier merges win."""
        out = frame.value
        assert isinstance(out, _Map)
        for source in frame.merged:
            for key, value in source.items():
                if key not in out:
                    out[key] = value
                    out.keys_at[key] = source.keys_at[key]
                    out.values_at[key] = source.values_at[key]

    def scalar(self, scalar: _Scalar) -> Any:
        try:
            return self._scalar(scalar)
        except ValueError:  # an integer past Python's 4,300 digits
            raise self.error(f"number {quoted_short(scalar.value)} is too large", scalar.pos) from None

    def _scalar(self, scalar: _Scalar) -> Any:
        value = scalar.value
        tag = scalar.tag
        if scalar.quoted or tag == _STR_TAG or (tag is None and not scalar.plain):
            return value
        if tag is None:
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
        raise self.error(f"unsupported YAML tag {quoted_short(tag)}", scalar.pos)


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



def load_documents(text: str, file: Path) -> list[tuple[Any, tuple[int, int]]]:
    """(data, 1-based position) of every document of ``text``, within the limits above.

    libyaml's events first; when libyaml rejects the text, ruamel.yaml's events (its verdict
    and message are the reference).  Raises ManifestError naming ``file``.
    """
    if _FAST_LOADER is not None:
        try:
            return _Builder(file).documents(_pyyaml.parse(text, Loader=_FAST_LOADER))
        except _pyyaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            if mark is not None and "maximum nesting depth" in str(getattr(exc, "problem", "")):
                # libyaml stops at 1,000 levels, past ours (its scanner reads ahead of the events)
                raise ManifestError(
                    f"nested deeper than {MAX_DEPTH} levels", file, mark.line + 1, mark.column + 1
                ) from None
            if len(text) > REPARSE_LIMIT_BYTES:
                raise _yaml_error(exc, file, text) from None
            # ruamel's verdict and message are the reference; ask it
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError as RuamelYAMLError

    try:
        return _Builder(file).documents(YAML(typ="safe", pure=True).parse(text))
    except RuamelYAMLError as exc:
        raise _yaml_error(exc, file, text) from None
