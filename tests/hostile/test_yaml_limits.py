"""The loader's limits at their boundaries, with libyaml and with ruamel.yaml alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.reconcile.manifest import load_manifests, loader, yamlnodes
from reconciler.reconcile.manifest.yamlnodes import (
    MAX_DEPTH,
    MAX_NODES,
    _Builder,
    load_documents,
    quoted_short,
)

F = Path("limits.yaml")


@pytest.fixture(params=["libyaml", "ruamel"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ruamel":
        monkeypatch.setattr(yamlnodes, "_FAST_LOADER", None)
    elif yamlnodes._FAST_LOADER is None:  # pragma: no cover
        pytest.skip("PyYAML with libyaml is not installed")
    return str(request.param)


def error(text: str) -> str:
    with pytest.raises(ManifestError) as info:
        load_documents(text, F)
    assert "\n" not in str(info.value)
    return str(info.value)


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, (list, dict)):
        depth += 1
        if not value:
            break
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
    return depth


def events(text: str):
    """The events of ``text`` from whichever parser the test runs with."""
    if yamlnodes._FAST_LOADER is not None:
        return yamlnodes._pyyaml.parse(text, Loader=yamlnodes._FAST_LOADER)
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).parse(text)


def test_the_limits_are_the_documented_ones() -> None:
    assert (yamlnodes.MAX_MANIFEST_BYTES, MAX_DEPTH, MAX_NODES) == (8 * 1024 * 1024, 64, 1_000_000)


@pytest.mark.parametrize("style", ["flow", "block"])
def test_depth_64_is_read_and_65_is_refused(parser: str, style: str) -> None:
    def text(depth: int) -> str:
        if style == "flow":
            return "[" * depth + "]" * depth + "\n"
        return "- " * depth + "x\n"

    ((value, _),) = load_documents(text(MAX_DEPTH), F)
    assert depth_of(value) == MAX_DEPTH
    message = error(text(MAX_DEPTH + 1))
    assert message.startswith(f"{F}:1:") and message.endswith("nested deeper than 64 levels")


def test_depth_through_an_alias_counts_where_it_is_used(parser: str) -> None:
    anchored = "a: &a " + "[" * 60 + "]" * 60 + "\n"
    ok = anchored + "b: " + "[" * 3 + "*a" + "]" * 3 + "\n"  # 1 (root) + 3 + 60 = 64
    too_deep = anchored + "b: " + "[" * 4 + "*a" + "]" * 4 + "\n"
    ((value, _),) = load_documents(ok, F)
    assert depth_of(value["b"]) == 63
    assert error(too_deep).endswith("nested deeper than 64 levels (through an alias)")


def test_nodes_are_counted_with_aliases_expanded(parser: str) -> None:
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a]\n"  # 1 + (1 + 1+9) + (1 + 1+3*10) = 44
    builder = _Builder(F, max_nodes=44)
    ((value, _),) = builder.documents(events(text))
    assert builder.total == 44
    assert value["b"][0] is value["a"] and value["b"][2] is value["a"], "an alias reuses its anchor's value"
    with pytest.raises(ManifestError, match="more than 43 YAML nodes"):
        _Builder(F, max_nodes=43).documents(events(text))


def test_a_bomb_is_refused_at_the_alias_that_crosses_the_limit(parser: str) -> None:
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        rows.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    message = error("\n".join(rows) + "\n")
    assert time.perf_counter() - start < 0.5
    assert message.startswith(f"{F}:7:")  # row g: its first alias passes the limit
    assert message.endswith(": more than 1,000,000 YAML nodes (aliases expanded); refusing to read further")


def test_a_recursive_alias_is_refused(parser: str) -> None:
    assert error("a: &x {b: [*x]}\n") == f"{F}:1:4: recursive YAML alias"


def test_a_2000_model_manifest_is_far_below_the_node_limit(tmp_path: Path) -> None:
    rows = ["apiVersion: reconciler/v1", "kind: ModelSet", "metadata: {name: big}", "spec:", "  models:"]
    rows += [f"    - {{name: m{i:05d}, source: owner/repo{i}, description: model {i}, tags: [a, b]}}"
             for i in range(2000)]
    builder = _Builder(F)
    builder.documents(events("\n".join(rows)))
    assert 20_000 < builder.total < 40_000  # the 1,000,000 limit leaves room for ~50,000 such models


def test_file_size_limit_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_MANIFEST_BYTES", 100)
    f = tmp_path / "m.yaml"
    f.write_bytes(b"# " + b"x" * 97 + b"\n")  # 100 bytes: read (an empty manifest)
    assert load_manifests([f]).sets == []
    f.write_bytes(b"# " + b"x" * 98 + b"\n")  # 101 bytes
    with pytest.raises(ManifestError, match=r"larger than 0 MiB \(100 bytes\)"):
        load_manifests([f])


def test_an_integer_past_pythons_digit_limit_is_a_manifest_error(parser: str) -> None:
    message = error("a: " + "1" * 5000 + "\n")
    assert message.startswith(f"{F}:1:4: number '11111") and message.endswith("(5,000 characters) is too large")


def test_values_in_messages_are_clipped_without_building_their_repr() -> None:
    assert quoted_short("x" * 5_000_000) == "'" + "x" * 79 + "... (5,000,000 characters)"
    shared = list(range(10))
    big = {f"k{i}": shared for i in range(200_000)}
    start = time.perf_counter()
    text = quoted_short(big)
    assert time.perf_counter() - start < 0.1
    assert text.startswith("{'k0': [0, 1, 2") and text.endswith("...") and len(text) <= 83
    assert quoted_short({"a": [1, "b"]}) == "{'a': [1, 'b']}"
