"""Generated manifests meant to break the loader: random YAML, wrong types, huge strings,
deep nesting, unicode names, anchors and alias bombs.

The contract for each (see conftest.refused): ``validate`` and ``plan`` exit 1 with one line
naming the file (and the line where the problem was written, where there is one), no
traceback, nothing on disk changed, in well under a second.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.install.paths import is_reserved_name
from reconciler.reconcile.manifest import ConfigOverrides
from reconciler.reconcile.manifest import models as manifest_models
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType
from tests.hostile.conftest import FEW, HOSTILE, refused, tree, write_raw
from tests.hostile.yamltext import HEADER, entry_manifest, flow

COMMANDS = st.sampled_from(["validate", "plan"])
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


# --- random YAML --------------------------------------------------------------------------------

YAMLISH = st.text(alphabet=st.sampled_from(list(" \t\n\r-:[]{}&*!|>'\"#%@`,?ab01.~<=\\\x00\ufeff\u2028")),
                  max_size=300)


@HOSTILE
@given(tail=st.one_of(YAMLISH, st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)),
       command=COMMANDS)
def test_random_yaml_after_a_header_is_refused(ws, tail: str, command: str) -> None:
    """Whatever follows, the first document holds an unknown top-level key ``bogus``: the
    text either does not parse, breaks a limit, or fails validation."""
    refused(ws, command, HEADER + "bogus: " + tail)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    TEXT)
KEYS = TEXT.filter(lambda k: k != "apiVersion")
DATA = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(KEYS, inner, max_size=4)),
                    max_leaves=25)
DOCUMENTS = st.one_of(
    st.dictionaries(KEYS, DATA, max_size=6),  # a mapping without apiVersion
    st.lists(DATA, max_size=5),  # not a mapping
    SCALARS.filter(lambda v: v is not None and v != ""),  # not a mapping (None and '' are empty documents)
)


@HOSTILE
@given(doc=DOCUMENTS, flow_style=st.booleans(), command=COMMANDS)
def test_random_documents_are_refused(ws, doc: Any, flow_style: bool, command: str) -> None:
    refused(ws, command, yaml.safe_dump(doc, allow_unicode=True, default_flow_style=flow_style))


# --- wrong types ------------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "metadata.name": "hostile", "prune": True, "defaults": {}, "name": "good",
    "source": "../files/lora.safetensors", "tags": ["a"], "inplace": False, "warm": False,
    "description": "d", "sha256": None, "type": "lora", "base": "sd-1", "format": "lycoris", "config": {},
}
ENTRY_FIELDS = ["name", "source", "tags", "inplace", "warm", "description", "sha256", "type", "base", "format",
                "config"]


def manifest_text(values: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """The manifest with ``values`` written in flow style, and the line of each field."""
    lines = ["apiVersion: reconciler/v1", "kind: ModelSet", "metadata:",
             f"  name: {flow(values['metadata.name'])}", "spec:",
             f"  prune: {flow(values['prune'])}", f"  defaults: {flow(values['defaults'])}"]
    at = {"metadata.name": 4, "prune": 6, "defaults": 7}
    if not isinstance(values.get("models", []), list):
        lines.append(f"  models: {flow(values['models'])}")
        at["models"] = len(lines)
        return "\n".join(lines) + "\n", at
    lines.append("  models:")
    for i, key in enumerate(ENTRY_FIELDS):
        lines.append(("    - " if i == 0 else "      ") + f"{key}: {flow(values[key])}")
        at[key] = len(lines)
    return "\n".join(lines) + "\n", at


_BOOL_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
SMALL = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), TEXT)
LISTS = st.lists(SMALL, max_size=3)
MAPS = st.dictionaries(TEXT, SMALL, max_size=3)
NOT_STR = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), LISTS, MAPS)
NOT_BOOL = st.one_of(
    LISTS, MAPS,
    TEXT.filter(lambda s: s.strip().lower() not in _BOOL_WORDS),
    st.integers().filter(lambda v: v not in (0, 1)),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v not in (0.0, 1.0)),
)
NOT_LIST = st.one_of(st.integers(), st.booleans(), TEXT, MAPS)
NOT_MAP = st.one_of(st.integers(), st.booleans(), TEXT, LISTS)


def not_enum(values: set[str]) -> st.SearchStrategy[Any]:
    return st.one_of(TEXT.filter(lambda s: s not in values), st.integers(), LISTS, MAPS)


def _not_sha256(value: Any) -> bool:
    return not (isinstance(value, str)
                and re.fullmatch(r"[0-9a-f]{64}", value.strip().lower().removeprefix("sha256:")))


WRONG: dict[str, st.SearchStrategy[Any]] = {
    "metadata.name": st.one_of(st.none(), NOT_STR, TEXT.filter(lambda s: not re.fullmatch(
        r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?", s))),
    "prune": NOT_BOOL,
    "defaults": NOT_MAP,
    "models": NOT_LIST,
    "name": st.one_of(st.none(), NOT_STR),
    "source": st.one_of(st.none(), NOT_STR),
    "tags": st.one_of(st.none(), NOT_LIST,
                      st.lists(st.one_of(st.none(), st.integers(), st.booleans(), LISTS, MAPS), min_size=1,
                               max_size=3)),
    "inplace": NOT_BOOL,
    "warm": NOT_BOOL,
    "description": NOT_STR,
    "sha256": st.one_of(NOT_STR, TEXT).filter(_not_sha256),
    "type": not_enum({e.value for e in ModelType}),
    "base": not_enum({e.value for e in BaseModelType}),
    "format": not_enum({e.value for e in ModelFormat}),
    "config": st.one_of(NOT_MAP, st.dictionaries(TEXT.filter(lambda k: k not in _CONFIG_KEYS), SMALL,
                                                 min_size=1, max_size=2)),
}
_CONFIG_KEYS = set(ConfigOverrides.model_fields)


def test_the_good_manifest_is_good(lora_ws) -> None:
    """The control for the wrong-type test: with every value as GOOD has it, all is well."""
    text, _ = manifest_text(GOOD)
    write_raw(lora_ws, text)
    assert lora_ws.cli("validate", str(lora_ws.manifests)).exit_code == 0
    assert lora_ws.cli("plan", "--detailed-exitcode", str(lora_ws.manifests)).exit_code == 2  # one to create


@HOSTILE
@given(data=st.data(), command=COMMANDS)
def test_a_wrong_type_is_refused_where_it_was_written(lora_ws, data: st.DataObject, command: str) -> None:
    field = data.draw(st.sampled_from(sorted(WRONG)), label="field")
    bad = data.draw(WRONG[field], label="value")
    text, at = manifest_text({**GOOD, field: bad})
    line = refused(lora_ws, command, text)
    path = lora_ws.manifests / "m.yaml"
    assert line.startswith(f"{path}:{at[field]}:"), line
    key = field.split(".")[-1]
    if field == "config" and isinstance(bad, dict):  # an unknown config key is named itself
        key = repr(next(iter(bad)))[:70]
    assert key in line, line


# --- huge strings -----------------------------------------------------------------------------------

@FEW
@given(field=st.sampled_from(["metadata.name", "name", "source", "sha256", "type", "tags"]),
       size=st.sampled_from([300, 100_000, 1_500_000]),
       char=st.characters(exclude_categories=("Cs",)).filter(
           lambda c: c.isprintable() and not c.isspace() and c not in "/\\"),
       command=COMMANDS)
def test_huge_strings_are_refused_with_a_short_message(lora_ws, field: str, size: int, char: str,
                                                       command: str) -> None:
    value: Any = ("/" if field == "source" else "") + char * size
    if field == "tags":
        value = [1, value]  # the huge string next to a wrong item
    text, at = manifest_text({**GOOD, field: value})
    line = refused(lora_ws, command, text, within=5.0)
    assert line.startswith(f"{lora_ws.manifests / 'm.yaml'}:{at[field]}:"), line[:300]


def test_a_file_over_the_size_limit_is_refused_unread(lora_ws) -> None:
    text = HEADER + "spec: {}\n# " + "x" * (8 * 1024 * 1024) + "\n"
    line = refused(lora_ws, "validate", text)
    assert line.endswith("larger than 8 MiB (8,388,608 bytes), the most a manifest may hold"), line


def test_a_large_legal_manifest_loads_in_bounded_time(lora_ws) -> None:
    """Big but within the limits (a 6 MB description): accepted, in seconds, not minutes."""
    text, _ = manifest_text({**GOOD, "description": "d" * 6_000_000})
    write_raw(lora_ws, text)
    start = time.perf_counter()
    result = lora_ws.cli("validate", str(lora_ws.manifests))
    assert result.exit_code == 0, result.output[:500]
    assert time.perf_counter() - start < 10


# --- deep nesting ---------------------------------------------------------------------------------

def nested(depth: int, style: str) -> str:
    if style == "flow-seq":
        return "[" * depth + "]" * depth
    if style == "flow-map":
        return "{a: " * depth + "1" + "}" * depth
    assert style == "block-seq"  # compact block sequences: "- - - x", one level per "- "
    return "\n" + "      " + "- " * depth + "x"


@pytest.mark.parametrize("depth", [65, 999, 1000, 2000, 100_000])
@pytest.mark.parametrize("style", ["flow-seq", "flow-map", "block-seq"])
@pytest.mark.parametrize("where", ["config", "tags", "top"])
def test_deep_nesting_is_refused_quickly(lora_ws, depth: int, style: str, where: str) -> None:
    if where == "top":
        text = HEADER + "spec: " + nested(depth, style).replace("\n      ", "\n  ") + "\n"
    else:
        base, _ = manifest_text(GOOD)
        text = base.replace(f"      {where}: {flow(GOOD[where])}", f"      {where}: {nested(depth, style)}")
    line = refused(lora_ws, "validate", text)
    assert line.endswith("nested deeper than 64 levels"), line


@HOSTILE
@given(levels=st.lists(st.booleans(), min_size=65, max_size=1500), command=COMMANDS)
def test_mixed_nesting_past_the_limit_is_refused(ws, levels: list[bool], command: str) -> None:
    opened = "".join("[" if seq else "{k: " for seq in levels)
    closed = "".join("]" if seq else "}" for seq in reversed(levels))
    line = refused(ws, command, HEADER + "spec: " + opened + "1" + closed + "\n")
    assert line.endswith("nested deeper than 64 levels"), line


# --- unicode names ------------------------------------------------------------------------------------

NAMES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=120),
    st.sampled_from(["..", ".", "con", "NUL.txt", "com1.x", " a", "a ", "a/b", "a\\b", "a\x00b", "\u00e9" * 101]),
)


def name_is_allowed(name: str) -> bool:
    """The documented rule for model names, written out on its own."""
    return (bool(name) and name == name.strip() and name not in (".", "..") and "/" not in name
            and "\\" not in name and name.isprintable() and len(name.encode("utf-8")) <= 200
            and not is_reserved_name(name))


@HOSTILE
@given(name=NAMES, command=COMMANDS)
def test_unicode_names_follow_the_name_rule(lora_ws, name: str, command: str) -> None:
    text = entry_manifest(name)
    if name_is_allowed(name):
        write_raw(lora_ws, text)
        result = lora_ws.cli(command, str(lora_ws.manifests))
        assert result.exit_code == 0, result.output
    else:
        line = refused(lora_ws, command, text)
        assert line.startswith(f"{lora_ws.manifests / 'm.yaml'}:7:13: name"), line


@FEW
@given(name=NAMES.filter(name_is_allowed))
def test_an_allowed_unicode_name_installs_inside_the_models_dir(lora_ws, name: str) -> None:
    ws = lora_ws
    shutil.rmtree(ws.models_dir, ignore_errors=True)
    write_raw(ws, entry_manifest(name))
    outside = {k: v for k, v in tree(ws.root).items() if not k.startswith("models")}
    result = ws.apply()
    assert result.exit_code == 0, result.output
    (record,) = ws.records()
    assert record.name == name and record.path == f"sd-1/lora/{name}.safetensors"
    installed = (ws.models_dir / record.path).resolve()
    assert installed.is_file() and installed.parent == (ws.models_dir / "sd-1" / "lora").resolve()
    assert {k: v for k, v in tree(ws.root).items() if not k.startswith("models")} == outside


def test_reserved_name_rules_agree() -> None:
    """The manifest repeats install/paths.py's rule (so `validate` does not import the installer)."""
    for name in ["con", "CON", "Con.txt", "nul", "aux.tar.gz", "COM1", "com9.x", "LPT1", "lpt\u00b9", "CONIN$",
                 "conout$.y", "PRN  .z", "console", "cons", "com10", "lpt", "nul_", "xcon", ".con", "a.con"]:
        assert manifest_models._is_reserved_name(name) == is_reserved_name(name), name
    assert is_reserved_name("con") and is_reserved_name("NUL.safetensors") and is_reserved_name("Com1")
    assert not is_reserved_name("console") and not is_reserved_name("a.con") and not is_reserved_name("com10")


@HOSTILE
@given(name=st.text(max_size=12))
def test_reserved_name_rules_agree_on_any_text(name: str) -> None:
    assert manifest_models._is_reserved_name(name) == is_reserved_name(name)


# --- anchors and alias bombs ---------------------------------------------------------------------

def bomb(width: int, levels: int, style: str) -> str:
    """Anchors, each naming ``width`` aliases of the one before: width**levels nodes expanded."""
    if style == "seq":
        rows = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
        rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    else:
        rows = [f"a0: &a0 {{{', '.join(f'k{j}: lol' for j in range(width))}}}"]
        rows += [f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(width))}}}" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("where", ["top", "config"])
def test_billion_laughs_is_refused_in_well_under_a_second(lora_ws, where: str) -> None:
    text = bomb(9, 10, "seq")  # 9**10 = 3.5 billion nodes
    if where == "config":
        base, _ = manifest_text(GOOD)
        inner = text.replace("\n", ", ").rstrip(", ")
        text = base.replace("      config: {}", "      config: {" + inner + "}")
    else:
        text = HEADER + text
    line = refused(lora_ws, "validate", text)
    assert "more than 1,000,000 YAML nodes (aliases expanded)" in line, line


@HOSTILE
@given(width=st.integers(2, 40), style=st.sampled_from(["seq", "map"]), extra=st.integers(0, 3),
       command=COMMANDS)
def test_alias_bombs_are_refused_before_they_expand(ws, width: int, style: str, extra: int, command: str) -> None:
    levels = 1
    while width ** levels <= 1_000_000:
        levels += 1
    line = refused(ws, command, HEADER + bomb(width, levels + extra, style))
    assert "more than 1,000,000 YAML nodes (aliases expanded)" in line, line


def test_merge_key_bomb_is_refused(ws) -> None:
    rows = ["b0: &b0 {" + ", ".join(f"k{j}: x" for j in range(10)) + "}"]
    rows += [f"b{i}: &b{i} {{<<: [{', '.join([f'*b{i - 1}'] * 10)}]}}" for i in range(1, 8)]
    line = refused(ws, "validate", HEADER + "\n".join(rows) + "\n")
    assert "more than 1,000,000 YAML nodes" in line, line


def test_recursive_alias_is_refused(ws) -> None:
    line = refused(ws, "validate", HEADER + "spec: &s {models: *s}\n")
    assert line.endswith("recursive YAML alias"), line


@HOSTILE
@given(anchor=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=5000))
def test_an_undefined_alias_is_named_briefly(ws, anchor: str) -> None:
    line = refused(ws, "validate", HEADER + f"spec: *{anchor}\n")
    assert ":5:7: malformed YAML: found undefined alias" in line, line


# --- a few through a real process --------------------------------------------------------------------

def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "from reconciler.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, "--models-dir", str(cwd / "models"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", ["bomb", "nesting", "size", "random"])
def test_refusals_in_a_real_process(ws, case: str) -> None:
    texts = {
        "bomb": HEADER + bomb(9, 10, "seq"),
        "nesting": HEADER + "spec: " + "[" * 2000 + "]" * 2000 + "\n",
        "size": HEADER + "# " + "x" * (9 * 1024 * 1024) + "\n",
        "random": HEADER + "spec: {models: [{name: a, source: 1}]}\nbogus: [\x00]\n",
    }
    path = write_raw(ws, texts[case])
    before = tree(ws.root)
    start = time.perf_counter()
    proc = _run_cli("validate", str(ws.manifests), cwd=ws.root)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"Error: {path}:") and len(line) < 1000, line[:500]
    assert tree(ws.root) == before
    assert elapsed < 20, f"{elapsed:.1f} s (the interpreter's start included)"


def test_dev_zero_as_a_manifest_is_refused_at_the_size_limit(ws) -> None:
    """A device or a pipe is read as far as the limit, never to its end."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    start = time.perf_counter()
    result = ws.cli("validate", "/dev/zero")
    assert result.exit_code == 1
    assert result.stderr == "Error: /dev/zero: larger than 8 MiB (8,388,608 bytes), the most a manifest may hold\n"
    assert time.perf_counter() - start < 5
