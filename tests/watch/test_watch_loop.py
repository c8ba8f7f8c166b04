"""`reconciler watch` for real: a subprocess on temp dirs, real file events, its log parsed.

Each test waits for the watcher's own log lines ("reconcile #N trigger=... result=...") with
a timeout instead of sleeping; the few fixed sleeps prove that something does NOT happen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.testing.models import write_lora_kohya
from tests.download.server import FaultServer


@pytest.fixture(scope="module")
def loras(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {name: write_lora_kohya(root / f"{name}.safetensors", rank=i + 1)
            for i, name in enumerate(["a", "b", "c", "big"])}


def save(path: Path, text: str) -> None:
    """Save as editors do: write a temporary file beside it, then rename it over."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def set_text(set_name: str, models: dict[str, Path | str]) -> str:
    body = "".join(f"    - {{name: {n}, source: '{src}'}}\n" for n, src in models.items()) or "    []\n"
    return (f"apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {{name: {set_name}}}\nspec:\n"
            f"  models:\n{body}")


def names(ws) -> set[str]:
    return {r.name for r in ws.records()} if ws.db_path.exists() else set()


def model_files(ws) -> list[str]:
    return sorted(p.relative_to(ws.models_dir).as_posix() for p in ws.models_dir.rglob("*")
                  if p.is_file() and ".reconciler" not in p.parts)


def test_edit_installs_and_removed_entry_prunes(ws, watcher, loras):
    manifest = ws.manifests / "team.yaml"
    save(manifest, set_text("team", {"a": loras["a"]}))
    w = watcher(str(ws.manifests))
    first = w.wait_reconcile(1)
    assert (first["trigger"], first["result"], first["actions"]) == ("start", "success", "create:1")
    save(manifest, set_text("team", {"a": loras["a"], "b": loras["b"]}))
    second = w.wait_reconcile(2)
    assert (second["trigger"], second["result"], second["actions"]) == ("manifests", "success", "create:1")
    assert names(ws) == {"a", "b"}
    save(manifest, set_text("team", {"b": loras["b"]}))
    third = w.wait_reconcile(3)
    assert (third["result"], third["actions"]) == ("success", "delete:1")
    assert names(ws) == {"b"}
    assert w.stop() == 0


def test_invalid_save_never_prunes_then_the_next_valid_save_reconciles(ws, watcher, loras):
    manifest = ws.manifests / "team.yaml"
    save(manifest, set_text("team", {"a": loras["a"], "b": loras["b"]}))
    w = watcher(str(ws.manifests))
    assert w.wait_reconcile(1)["actions"] == "create:2"
    files = model_files(ws)
    for broken in ("", "<<<<<<< HEAD\nspec: [\n", set_text("team", {"a": loras["a"]}).replace("name: a", "nme: a")):
        manifest.write_text(broken, encoding="utf-8")  # truncate-and-write, as VS Code saves
        n = len(w.reconciles()) + 1
        stalled = w.wait_reconcile(n)
        assert stalled["result"] == "stalled" and "manifests invalid" in stalled["message"], stalled
        assert "delete" not in stalled["actions"]
        assert names(ws) == {"a", "b"} and model_files(ws) == files
    save(manifest, set_text("team", {"b": loras["b"]}))
    ok = w.wait_reconcile(len(w.reconciles()) + 1)
    assert (ok["result"], ok["actions"]) == ("success", "delete:1")
    assert names(ws) == {"b"}


@pytest.mark.parametrize("allow", [False, True], ids=["kept", "allow-prune-on-delete"])
def test_deleted_manifest_file_prunes_only_when_allowed(ws, watcher, loras, allow):
    save(ws.manifests / "x.yaml", set_text("x", {"a": loras["a"]}))
    save(ws.manifests / "y.yaml", set_text("y", {"b": loras["b"]}))
    w = watcher(str(ws.manifests), *(["--allow-prune-on-delete"] if allow else []))
    assert w.wait_reconcile(1)["actions"] == "create:2"
    (ws.manifests / "y.yaml").unlink()
    after = w.wait_reconcile(2)
    assert after["result"] == "success"
    if allow:
        assert after["actions"] == "delete:1" and names(ws) == {"a"}
    else:
        assert after["actions"] == "none" and names(ws) == {"a", "b"}
        assert "was deleted: keeping set 'y'" in w.text()


def test_managed_file_deleted_by_hand_is_repaired(ws, watcher, loras):
    save(ws.manifests / "team.yaml", set_text("team", {"a": loras["a"]}))
    w = watcher(str(ws.manifests))
    w.wait_reconcile(1)
    (installed,) = model_files(ws)
    (ws.models_dir / installed).unlink()
    repaired = w.wait_reconcile(2)
    assert (repaired["trigger"], repaired["actions"]) == ("models", "repair:1"), repaired
    assert (ws.models_dir / installed).read_bytes() == loras["a"].read_bytes()
    time.sleep(0.8)
    assert len(w.reconciles()) == 2, "the repair's own copy does not trigger another reconcile"


def test_file_dropped_into_the_autoimport_dir_is_registered(ws, watcher, loras):
    drop = ws.root / "incoming"
    drop.mkdir()
    save(ws.manifests / "team.yaml", set_text("team", {"a": loras["a"]}))
    w = watcher(str(ws.manifests), env={"RECONCILER_AUTOIMPORT_DIR": str(drop)})
    w.wait_reconcile(1)
    (drop / "dropped.safetensors").write_bytes(loras["c"].read_bytes())
    registered = w.wait_reconcile(2)
    assert (registered["trigger"], registered["actions"]) == ("autoimport", "register:1"), registered
    (rec,) = [r for r in ws.records() if r.name == "dropped"]
    assert rec.managed_by is None, "registered in place, never pruned"


def test_idle_watcher_then_a_burst_of_saves_reconciles_once(ws, watcher, loras):
    manifest = ws.manifests / "team.yaml"
    save(manifest, set_text("team", {"a": loras["a"]}))
    w = watcher(str(ws.manifests))
    w.wait_reconcile(1)
    time.sleep(3)
    assert len(w.reconciles()) == 1, "an idle watcher does not reconcile"
    for i in range(20):  # 20 saves, 20 ms apart: one burst
        save(manifest, set_text("team", {"a": loras["a"]}) + f"# save {i}\n")
        time.sleep(0.02)
    assert w.wait_reconcile(2)["trigger"] == "manifests"
    time.sleep(1.0)
    assert len(w.reconciles()) == 2, w.text()


def test_git_sync_symlink_swap_is_one_reconcile_with_the_new_revision(ws, watcher, loras):
    root = ws.root / "git"
    old, new = "a" * 40, "b" * 40
    for sha, models in ((old, {"a": loras["a"]}), (new, {"a": loras["a"], "b": loras["b"]})):
        (root / ".worktrees" / sha / "manifests").mkdir(parents=True)
        save(root / ".worktrees" / sha / "manifests" / "team.yaml", set_text("team", models))
    link = root / "current"
    link.symlink_to(root / ".worktrees" / old)
    w = watcher(str(link / "manifests"))
    first = w.wait_reconcile(1)
    assert first["revision"] == old and first["actions"] == "create:1"
    tmp = root / ".current.tmp"  # git-sync --link: a new link, renamed over the old one
    tmp.symlink_to(root / ".worktrees" / new)
    os.replace(tmp, link)
    second = w.wait_reconcile(2)
    assert (second["trigger"], second["revision"], second["actions"]) == ("manifests", new, "create:1"), second
    time.sleep(0.8)
    assert len(w.reconciles()) == 2
    assert names(ws) == {"a", "b"}


def test_hub_down_is_retried_with_backoff_until_it_installs(ws, watcher, loras):
    with FaultServer() as server:
        route = server.add_file("/files/x.safetensors", data=loras["b"].read_bytes(), etag='"x"')
        route.fail_statuses = [503] * 10_000
        save(ws.manifests / "team.yaml", set_text("team", {"x": server.url("/files/x.safetensors")}))
        w = watcher(str(ws.manifests), env={"RECONCILER_DOWNLOAD_RETRIES": "0"})
        assert w.wait_reconcile(1)["result"] == "failed"
        retried = w.wait_reconcile(2)
        assert (retried["trigger"], retried["result"]) == ("retry", "failed")
        route.fail_statuses.clear()
        for n in range(3, 8):
            last = w.wait_reconcile(n)
            if last["result"] == "success":
                break
        assert (last["trigger"], last["actions"]) == ("retry", "create:1"), w.text()
        assert names(ws) == {"x"}
        assert w.stop() == 0


def test_sigterm_during_a_download_exits_0_and_a_later_apply_completes(ws, watcher, loras):
    data = loras["big"].read_bytes()
    with FaultServer() as server:
        route = server.add_file("/files/big.safetensors", data=data, etag='"big"', rate=max(4096, len(data) // 20))
        save(ws.manifests / "team.yaml", set_text("team", {"big": server.url("/files/big.safetensors")}))
        w = watcher(str(ws.manifests), env={"RECONCILER_CONNECTIONS_PER_FILE": "1"})
        deadline = time.monotonic() + 15
        while not any(r.method == "GET" for r in list(server.requests)):
            assert time.monotonic() < deadline, w.text()
            time.sleep(0.02)
        time.sleep(0.3)
        t0 = time.monotonic()
        assert w.stop() == 0, w.text()
        assert time.monotonic() - t0 < 8
        assert model_files(ws) == [], "no partial file where the model goes"
        assert names(ws) == set()
        route.rate = None
        result = ws.apply()
        assert result.exit_code == 0, result.output
        (rec,) = ws.records()
        assert (ws.models_dir / rec.path).read_bytes() == data


def test_forced_polling_sees_edits(ws, watcher, loras):
    manifest = ws.manifests / "team.yaml"
    save(manifest, set_text("team", {"a": loras["a"]}))
    w = watcher(str(ws.manifests), "--poll")
    w.wait_reconcile(1)
    save(manifest, set_text("team", {"a": loras["a"], "b": loras["b"]}))
    polled = w.wait_reconcile(2)
    assert (polled["trigger"], polled["actions"]) == ("manifests", "create:1")
    time.sleep(2.5)
    assert len(w.reconciles()) == 2, "the apply's own copies are not seen as changes by the poller"


def test_revision_is_read_from_git_files_without_git(tmp_path):
    from reconciler.reconcile.watch_events import manifests_revision

    sha, packed = "c" * 40, "d" * 40
    (tmp_path / "repo" / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / "repo" / "manifests").mkdir()
    (tmp_path / "repo" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "repo" / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
    assert manifests_revision([tmp_path / "repo" / "manifests"]) == sha
    (tmp_path / "repo" / ".git" / "refs" / "heads" / "main").unlink()
    (tmp_path / "repo" / ".git" / "packed-refs").write_text(f"# pack-refs\n{packed} refs/heads/main\n")
    assert manifests_revision([tmp_path / "repo" / "manifests"]) == packed


def test_inotify_limit_falls_back_to_polling_and_names_the_sysctl(ws, caplog):
    import errno

    from reconciler.reconcile.watch import Watcher, WatchOptions
    from reconciler.reconcile.watch_observer import DirectoryObserver, make_observer
    from reconciler.settings import load_settings

    class Full:
        def start(self) -> None: ...
        def stop(self) -> None: ...
        def schedule(self, *args: Any, **kwargs: Any) -> Any:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    made: list[bool] = []

    def factory(polling: bool) -> Any:
        made.append(polling)
        return make_observer(True) if polling else Full()

    w = Watcher(load_settings(models_dir=ws.models_dir), WatchOptions(paths=[ws.manifests]))
    w.directories = DirectoryObserver(w.on_event, polling=False, factory=factory)
    with caplog.at_level("WARNING", logger="reconciler.reconcile.watch"):
        w.directories.start(w._watch_targets())
    try:
        assert made == [False, True] and w.directories.polling and w.directories.watches
        assert "fs.inotify.max_user_watches" in caplog.text and "falling back to polling" in caplog.text
    finally:
        w.directories.stop()


def test_watch_reconciles_views_too(ws, watcher, loras):
    """A ModelView beside the set: the watcher links new models into the app's folder and
    removes the links of a model taken out of the set (before its files)."""
    manifest = ws.manifests / "team.yaml"
    view = ("---\napiVersion: reconciler/v1\nkind: ModelView\nmetadata: {name: comfy}\n"
            f"spec: {{app: comfyui, root: '{ws.root / 'comfy'}', link: hardlink}}\n")
    loras_dir = ws.root / "comfy" / "models" / "loras"
    save(manifest, set_text("team", {"a": loras["a"]}) + view)
    w = watcher(str(ws.manifests))
    assert w.wait_reconcile(1)["result"] == "success"
    assert (loras_dir / "a.safetensors").read_bytes() == loras["a"].read_bytes()
    save(manifest, set_text("team", {"a": loras["a"], "b": loras["b"]}) + view)
    assert w.wait_reconcile(2)["result"] == "success"
    assert sorted(p.name for p in loras_dir.iterdir()) == ["a.safetensors", "b.safetensors"]
    save(manifest, set_text("team", {"b": loras["b"]}) + view)
    assert w.wait_reconcile(3)["result"] == "success"
    assert sorted(p.name for p in loras_dir.iterdir()) == ["b.safetensors"] and names(ws) == {"b"}
    assert w.stop() == 0
