"""Apply progress: bars from install events on a terminal, a line per action done."""

from __future__ import annotations

import io

from rich.console import Console

from reconciler.events import Event
from reconciler.reconcile.plan import ActionKind, PlannedAction
from reconciler.render.progress import ApplyProgress
from reconciler.testing.models import write_vae_checkpoint


def test_bars_follow_download_events_and_go_when_done():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with ApplyProgress(console, live=True) as progress:
        progress.on_event(Event("model_install_downloading", {"id": 1, "source": "hf://a/b", "bytes": 10,
                                                             "total_bytes": 100}))
        assert len(progress._progress.tasks) == 1 and progress._progress.tasks[0].completed == 10
        progress.on_event(Event("model_install_downloading", {"id": 1, "source": "hf://a/b", "bytes": 100,
                                                             "total_bytes": 100}))
        assert progress._progress.tasks[0].completed == 100
        progress.on_event(Event("model_install_completed", {"id": 1, "key": "k"}))
        assert progress._progress.tasks == []
        done = PlannedAction(action=ActionKind.create, set="s", name="[weird]", source=None, reason="r",
                             result="created")
        failed = done.model_copy(update={"result": "error: boom"})
        progress.on_action(done)
        progress.on_action(failed)
    text = out.getvalue()
    assert "s/[weird]: created" in text and "boom" not in text


def test_apply_reports_each_action_on_stderr(ws):
    write_vae_checkpoint(ws.files / "v.safetensors", base="sd-1")
    ws.write_manifest("m.yaml", """
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {name: s}
        spec:
          models:
            - {name: v, source: ../files/v.safetensors}
        """)
    result = ws.cli("apply", "-y", "-o", "json", str(ws.manifests))
    assert result.exit_code == 0
    assert "done create   s/v: created" in result.stderr
    assert result.stdout.lstrip().startswith("{"), "stdout holds the JSON document alone"
