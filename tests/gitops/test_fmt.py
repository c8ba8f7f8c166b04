"""`reconciler fmt`: one canonical form, comments and entry order kept, --check, --diff."""

from __future__ import annotations

from pathlib import Path

from reconciler.reconcile.manifest.fmt import ENTRY_KEY_ORDER, format_text

MESSY = """\
# the studio's models
kind: ModelSet   # the kind
apiVersion: reconciler/v1
spec:
  models:
  - tags: [a, b]       # two tags
    source: ./files/a.safetensors
    name: zeta
    description: "quoted"
  - config: {trigger_phrases: [x]}
    warm: true
    base: sd-1
    type: lora
    name: alpha
    source: owner/repo:fp16:vae
    revision: main
  prune: false
  defaults:
    tags: [t]
    base: sd-1
metadata:
  labels: {team: art}
  name: studio
---
# another set
metadata:
    name: other
kind: ModelSet
apiVersion: reconciler/v1
"""

CANONICAL = """\
# the studio's models
apiVersion: reconciler/v1
kind: ModelSet   # the kind
metadata:
  name: studio
  labels: {team: art}
spec:
  prune: false
  defaults:
    base: sd-1
    tags: [t]
  models:
    - name: zeta
      source: ./files/a.safetensors
      description: "quoted"
      tags: [a, b]     # two tags
    - name: alpha
      source: owner/repo:fp16:vae
      revision: main
      type: lora
      base: sd-1
      warm: true
      config: {trigger_phrases: [x]}

---
# another set
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: other
"""


def test_canonical_form_keeps_comments_and_entry_order() -> None:
    assert format_text(MESSY) == CANONICAL


def test_formatting_twice_changes_nothing() -> None:
    once = format_text(MESSY)
    assert format_text(once) == once
    assert format_text(CANONICAL) == CANONICAL


def test_entry_key_order_is_the_documented_one() -> None:
    assert ENTRY_KEY_ORDER == ("name", "source", "revision", "variant", "subfolder", "sha256", "type",
                               "base", "format", "inplace", "warm", "description", "tags", "config")


def test_unknown_keys_follow_the_known_ones_in_their_order() -> None:
    text = "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: s}\nspec:\n  models:\n" \
           "    - zz: 1\n      name: a\n      aa: 2\n      source: x/y\n"
    assert "    - name: a\n      source: x/y\n      zz: 1\n      aa: 2\n" in format_text(text)


def test_other_kinds_get_the_document_key_order_only() -> None:
    text = "spec:\n  b: 1\n  a: 2\nkind: ModelView\napiVersion: reconciler/v1\nmetadata:\n  name: v\n"
    assert format_text(text) == \
        "apiVersion: reconciler/v1\nkind: ModelView\nmetadata:\n  name: v\nspec:\n  b: 1\n  a: 2\n"


def test_cli_rewrites_the_default_manifests_folder(ws) -> None:
    path = ws.write_manifest("studio.yaml", MESSY)
    ws.write_manifest("sub/ok.yaml", CANONICAL)
    result = ws.cli("fmt")  # no path: ./manifests
    assert result.exit_code == 0, result.output
    assert path.read_text() == CANONICAL
    assert "1 of 2 manifest file(s) reformatted" in result.stderr
    again = ws.cli("fmt", "--check")
    assert again.exit_code == 0, again.output


def test_check_changes_nothing_and_exits_1(ws) -> None:
    path = ws.write_manifest("studio.yaml", MESSY)
    result = ws.cli("fmt", "--check", "--diff")
    assert result.exit_code == 1
    assert path.read_text() == MESSY
    assert "would reformat" in result.stderr
    assert result.stdout.startswith("--- ")
    assert "+    - name: zeta\n" in result.stdout and "-  - tags: [a, b]" in result.stdout


def test_diff_without_check_writes_and_prints(ws) -> None:
    path = ws.write_manifest("studio.yaml", MESSY)
    result = ws.cli("fmt", "--diff", str(path))
    assert result.exit_code == 0
    assert "@@" in result.stdout and path.read_text() == CANONICAL


def test_invalid_yaml_is_one_line_and_no_file_changes(ws) -> None:
    good = ws.write_manifest("a.yaml", MESSY)
    ws.write_manifest("b.yaml", "apiVersion: reconciler/v1\nkind: [unclosed\n")
    result = ws.cli("fmt")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: manifests/b.yaml:3:1: ") and "malformed YAML" in lines[0]
    assert good.read_text() == MESSY  # every file is checked before any is written


def test_fmt_keeps_the_file_mode(ws) -> None:
    path = ws.write_manifest("studio.yaml", MESSY)
    path.chmod(0o640)
    assert ws.cli("fmt").exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o640


def test_repo_manifests_are_canonical() -> None:
    folder = Path(__file__).resolve().parents[2] / "manifests"
    for file in folder.rglob("*.yaml"):
        text = file.read_text(encoding="utf-8")
        assert format_text(text, file) == text, file
