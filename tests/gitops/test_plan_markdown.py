"""`plan -o markdown`: the plan as a pull-request comment."""

from __future__ import annotations

from reconciler.reconcile.plan import ActionKind, Plan, PlannedAction, PlannedFile
from reconciler.render.plan_markdown import GITHUB_COMMENT_LIMIT, MARKER, render_plan_markdown
from reconciler.testing.models import write_lora_kohya, write_vae_checkpoint

MANIFEST = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: studio
spec:
  models:
    - name: house-vae
      source: ../files/vae.safetensors
      type: vae
    - name: style|lora
      source: ../files/lora.safetensors
"""

EMPTY = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: studio
spec:
  models: []
"""


def _files(ws) -> None:
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")


def test_markdown_comment_has_summary_table_and_details(ws) -> None:
    _files(ws)
    ws.write_manifest("studio.yaml", MANIFEST)
    result = ws.cli("plan", "-o", "markdown")  # ./manifests by default
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(MARKER + "\n### reconciler plan\n")
    assert "**Plan: 2 to create; 0 unchanged.**" in out
    assert "| | model | action | reason | download |" in out
    assert "| `+` | `studio/house-vae` | create | not installed |  |" in out
    assert "`studio/style\\|lora`" in out  # a pipe in a name does not break the table
    assert out.count("<details>") == 2 and out.count("</details>") == 2
    assert "<summary><code>studio/house-vae</code>: create, 1 file(s)" in out
    assert "Truncated" not in out and result.stderr == ""


def test_no_changes_and_prune_guard_warning(ws) -> None:
    _files(ws)
    path = ws.write_manifest("studio.yaml", MANIFEST)
    assert ws.apply().exit_code == 0
    out = ws.cli("plan", "-o", "markdown").stdout
    assert "No changes." in out and "**Plan: nothing to change; 2 unchanged.**" in out
    path.write_text(EMPTY)
    out = ws.cli("plan", "-o", "markdown").stdout
    assert "#### Warnings" in out and "--allow-empty" in out
    assert "| `-` | `studio/house-vae` | delete |" in out


def _big_plan(n: int) -> Plan:
    actions = [
        PlannedAction(action=ActionKind.create, set="big", name=f"model-{i}", source=f"owner/repo-{i}",
                      reason="not installed", download_bytes=1 << 30,
                      files=[PlannedFile(path=f"unet/part-{j}.safetensors", size=1 << 28) for j in range(20)],
                      notes=["variant fp16 not found: took the default files"] if i == 0 else [])
        for i in range(n)
    ]
    return Plan(actions=actions, models_dir="models", free_bytes=1 << 40)


def test_notes_are_listed() -> None:
    out = render_plan_markdown(_big_plan(2))
    assert "#### Notes\n- `big/model-0`: variant fp16 not found: took the default files" in out
    assert "| `+` | `big/model-1` | create | not installed | 1.0 GiB |" in out


def test_long_plans_are_truncated_under_the_github_limit() -> None:
    out = render_plan_markdown(_big_plan(400))
    assert len(out) <= GITHUB_COMMENT_LIMIT
    assert "**Plan: 400 to create; 0 unchanged.**" in out
    assert "> **Truncated:**" in out and "left out to stay under GitHub's 65,536-character comment limit" in out
    assert out.count("<details>") == out.count("</details>")  # never cut inside a block
    small = render_plan_markdown(_big_plan(400), limit=3000)
    assert len(small) <= 3000 and "> **Truncated:**" in small
