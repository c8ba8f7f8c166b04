"""One bad model fails alone (issue 10): a model that cannot be planned or installed is an
error on its own action; every other model is still planned and applied; the run exits 1.
What makes the whole run unsafe stays fatal, before anything changes.

Everything goes through the real CLI (in-process), against local files and the fake hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.testing.models import (
    write_lora_kohya,
    write_malicious_pickle,
    write_not_a_model,
    write_safetensors,
    write_vae_checkpoint,
)
from tests.hub.conftest import hub  # noqa: F401 - fixture

#: a local source that is not a model, by kind: (file name, writer)
BAD_LOCAL = {
    "text": "bad.safetensors",
    "html": "bad.safetensors",
    "empty": "bad.safetensors",
    "truncated_header": "bad.safetensors",
    "bad_header": "bad.safetensors",
    "code_pickle": "bad.ckpt",
    "unknown_tensors": "bad.safetensors",
    "missing": "bad.safetensors",  # the path does not exist
}


def write_bad(ws, kind: str) -> Path:
    path = ws.files / BAD_LOCAL[kind]
    if kind == "code_pickle":
        write_malicious_pickle(path, marker=ws.root / "pwned")
    elif kind == "unknown_tensors":
        import numpy as np

        write_safetensors(path, {"encoder.layer.0.weight": np.zeros((4, 4), dtype=np.float32)})
    elif kind != "missing":
        write_not_a_model(path, kind)
    return path


def write_set(ws, *entries: str, prune: bool = True) -> Path:
    """Set 'team' in manifests/m.yaml; entries are flow mappings, one per line from line 7."""
    body = "".join(f"\n    - {e}" for e in entries) or " []"
    return ws.write_manifest("m.yaml", (
        "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: team}\n"
        f"spec:\n  prune: {str(prune).lower()}\n  models:{body}\n"
    ))


GOOD = "{name: good, source: ../files/good.safetensors}"


def bad_entry(kind: str) -> str:
    return f"{{name: bad, source: ../files/{BAD_LOCAL[kind]}}}"


@pytest.fixture
def good(ws):
    write_lora_kohya(ws.files / "good.safetensors", base="sd-1")
    return ws


def plan_doc(ws, *extra: str) -> tuple[int, dict, str]:
    result = ws.cli("plan", "-o", "json", *extra, str(ws.manifests))
    return result.exit_code, json.loads(result.stdout), result.stderr


def by_name(doc: dict) -> dict[str, dict]:
    return {a["name"]: a for a in doc["actions"]}


def records(ws) -> dict:
    return {r.name: r for r in ws.records()} if ws.db_path.exists() else {}


def record_state(ws) -> dict:
    """Every record's fields, to prove a model was left exactly as it was."""
    return {name: rec.model_dump(mode="json") for name, rec in records(ws).items()}


def model_files(ws) -> dict[str, bytes]:
    """Every file under the models dir outside its state folder, with its bytes."""
    if not ws.models_dir.exists():
        return {}
    return {p.relative_to(ws.models_dir).as_posix(): p.read_bytes()
            for p in sorted(ws.models_dir.rglob("*")) if p.is_file() and ".reconciler" not in p.parts}


def error_lines(result) -> list[str]:
    """The error lines on stderr (beside them: apply's "done" lines, plan's "Saved" line)."""
    assert "Traceback" not in result.output
    return [line.removeprefix("Error: ") for line in result.stderr.splitlines() if line.startswith("Error: ")]


# --- a local source that is not a model -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_LOCAL))
def test_bad_local_source_fails_alone(good, kind):
    ws = good
    bad = write_bad(ws, kind)
    manifest = write_set(ws, GOOD, bad_entry(kind))
    where = f"{manifest}:8:"  # the bad entry's source, as manifests name their errors

    code, doc, stderr = plan_doc(ws)
    assert code == 1
    actions = by_name(doc)
    assert actions["good"]["action"] == "create" and actions["good"]["error"] is None
    failed = actions["bad"]
    assert failed["action"] == "error" and failed["files"] == [] and failed["write_bytes"] == 0
    message = failed["error"]
    assert message.startswith(where) and "model 'bad'" in message and bad.name in message, message
    assert doc["summary"]["error"] == 1 and doc["summary"]["create"] == 1
    assert stderr == f"Error: {message}\n", "one line per bad model, the same words as the plan"

    text = ws.cli("plan", "--detailed-exitcode", str(ws.manifests))
    assert text.exit_code == 1, "errors win over --detailed-exitcode's 2"
    assert "  x error    team/bad" in text.stdout and "+ create   team/good" in text.stdout
    assert message in " ".join(text.stdout.split()), text.stdout
    assert "1 to create; 0 unchanged; 1 error" in text.stdout

    validate = ws.cli("validate", str(ws.manifests))
    assert validate.exit_code == 1 and error_lines(validate) == [message]

    result = ws.apply()
    assert result.exit_code == 1, result.output
    assert error_lines(result) == [message], "apply reports the plan's message, once"
    assert "1 created; 1 failed" in result.stdout
    assert set(records(ws)) == {"good"}, "nothing is registered for the bad model"
    assert list(model_files(ws)) == ["sd-1/lora/good.safetensors"]
    assert not (ws.root / "pwned").exists(), "the pickle's code never ran"

    again = ws.cli("plan", "-o", "json", str(ws.manifests))
    assert again.exit_code == 1 and [a["action"] for a in json.loads(again.stdout)["actions"]] == ["noop", "error"]


def test_a_prober_crash_on_one_model_fails_it_alone(good, monkeypatch):
    """An unexpected exception while planning one model (a prober bug) is that model's error."""
    import reconciler.install.service as service

    real = service.probe_model

    def crashing(path, overrides=None):
        if Path(path).name == "crash.safetensors":
            raise KeyError("lora_unet_down")
        return real(path, overrides)

    monkeypatch.setattr(service, "probe_model", crashing)
    write_vae_checkpoint(good.files / "crash.safetensors", base="sd-1")
    write_set(good, GOOD, "{name: crash, source: ../files/crash.safetensors}")
    result = good.apply()
    assert result.exit_code == 1
    (line,) = error_lines(result)
    assert "model 'crash'" in line and "unexpected KeyError" in line
    assert set(records(good)) == {"good"}


def test_validate_passes_good_models_and_names_every_bad_one(good):
    ws = good
    write_bad(ws, "text")
    write_set(ws, GOOD, bad_entry("text"), "{name: gone, source: ../files/gone.safetensors}")
    result = ws.cli("validate", str(ws.manifests))
    assert result.exit_code == 1
    lines = error_lines(result)
    assert len(lines) == 2 and "model 'bad'" in lines[0] and "gone.safetensors does not exist" in lines[1]
    assert not ws.models_dir.exists(), "validate touches no models dir"
    write_set(ws, GOOD)
    assert ws.cli("validate", str(ws.manifests)).exit_code == 0


# --- remote sources that cannot be resolved -------------------------------------------------------


@pytest.fixture
def remote(good, hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("RECONCILER_CIVITAI_ENDPOINT", hub.civitai_endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.setenv("RECONCILER_DOWNLOAD_RETRIES", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("CIVITAI_API_TOKEN", raising=False)
    good.hub = hub
    good.lora_bytes = (good.files / "good.safetensors").read_bytes()
    return good


@pytest.mark.parametrize("case", ["repo_404", "hub_down", "gated_without_token"])
def test_unresolvable_remote_source_fails_alone(remote, case):
    ws = remote
    if case == "gated_without_token":
        ws.hub.add_repo("tiny/remote", {"lora.safetensors": ws.lora_bytes})
        ws.hub.set_gated("tiny/remote", token="hf_the_right_token")
    elif case == "hub_down":
        ws.hub.add_repo("tiny/remote", {"lora.safetensors": ws.lora_bytes})
        ws.hub.close()
    manifest = write_set(ws, GOOD, "{name: bad, source: 'tiny/remote::lora.safetensors'}")

    code, doc, stderr = plan_doc(ws)
    assert code == 1
    actions = by_name(doc)
    assert actions["good"]["action"] == "create"
    message = actions["bad"]["error"]
    assert actions["bad"]["action"] == "error" and message.startswith(f"{manifest}:8:"), message
    assert "model 'bad'" in message and "tiny/remote" in message
    assert {"repo_404": "not found", "hub_down": "cannot reach", "gated_without_token": "token"}[case] in message.lower()
    assert stderr == f"Error: {message}\n"

    result = ws.apply()
    assert result.exit_code == 1, result.output
    assert error_lines(result) == [message]
    assert set(records(ws)) == {"good"}
    assert list(model_files(ws)) == ["sd-1/lora/good.safetensors"]


def dead_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- an installed model whose source now fails: kept exactly as it is ------------------------------


@pytest.mark.parametrize("how", ["now_text", "now_missing", "moved_to_missing_path", "remote_hub_down"])
def test_installed_model_whose_source_now_fails_is_neither_pruned_nor_changed(remote, how, monkeypatch):
    ws = remote
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    if how == "remote_hub_down":
        ws.hub.add_repo("tiny/lora", {"lora.safetensors": ws.lora_bytes})
        kept = "{name: kept, source: 'tiny/lora::lora.safetensors'}"
    else:
        kept = "{name: kept, source: ../files/vae.safetensors}"
    write_set(ws, GOOD, kept)
    assert ws.apply().exit_code == 0
    before_records, before_files = record_state(ws), model_files(ws)
    key = records(ws)["kept"].key

    if how == "now_text":
        write_not_a_model(ws.files / "vae.safetensors", "text")
    elif how == "now_missing":
        (ws.files / "vae.safetensors").unlink()
    elif how == "moved_to_missing_path":
        write_set(ws, GOOD, "{name: kept, source: ../files/elsewhere/vae.safetensors}")
    else:
        ws.hub.close()
        monkeypatch.setenv("HF_ENDPOINT", dead_endpoint())  # this process may keep a connection to the old one
    # also a change to the good model, so the apply has work to do beside the error
    (ws.manifests / "m.yaml").write_text((ws.manifests / "m.yaml").read_text().replace(
        "good.safetensors}", "good.safetensors, description: changed}"))

    code, doc, _ = plan_doc(ws)
    actions = by_name(doc)
    assert code == 1 and actions["kept"]["action"] == "error" and actions["kept"]["key"] == key
    assert actions["good"]["action"] == "update"
    assert doc["summary"]["delete"] == 0 and doc["summary"]["replace"] == 0

    result = ws.apply(extra=("--max-deletions", "0"))
    assert result.exit_code == 1, result.output
    assert len(error_lines(result)) == 1 and "model 'kept'" in result.stderr
    after = record_state(ws)
    assert after["kept"] == before_records["kept"], "the errored model's record is untouched"
    assert after["good"]["description"] == "changed", "the other model still converged"
    assert model_files(ws) == before_files, "the errored model's files are untouched"


@pytest.mark.parametrize("how", ["moved_to_another_set", "renamed"])
def test_a_model_that_may_be_the_errored_one_moved_or_renamed_is_not_pruned(good, how):
    """Set 'team' no longer declares 'kept'; a model that cannot be planned has its name (moved to
    another set) or its source (renamed): prune waits, with a warning, until that one plans."""
    ws = good
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    write_set(ws, GOOD, "{name: kept, source: ../files/vae.safetensors}")
    assert ws.apply().exit_code == 0
    before_records, before_files = record_state(ws), model_files(ws)
    if how == "moved_to_another_set":
        write_set(ws, GOOD)
        ws.write_manifest("other.yaml", "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: other}\n"
                          "spec:\n  models:\n    - {name: kept, source: ../files/gone.safetensors}\n")
    else:
        write_not_a_model(ws.files / "vae.safetensors", "text")
        write_set(ws, GOOD, "{name: renamed, source: ../files/vae.safetensors}")
    code, doc, _ = plan_doc(ws)
    assert code == 1 and doc["summary"]["delete"] == 0 and doc["summary"]["error"] == 1
    assert any("'kept' of set 'team' is not pruned" in w for w in doc["warnings"]), doc["warnings"]
    result = ws.apply()
    assert result.exit_code == 1 and len(error_lines(result)) == 1
    assert record_state(ws) == before_records and model_files(ws) == before_files
    # once the manifest is whole again, prune does what it says
    write_set(ws, GOOD)
    (ws.manifests / "other.yaml").unlink(missing_ok=True)
    assert ws.apply().exit_code == 0 and set(records(ws)) == {"good"}


# --- a failure while applying fails alone ---------------------------------------------------------


def test_download_failure_at_apply_time_fails_alone(remote):
    ws = remote
    other = write_lora_kohya(ws.root / "other.safetensors", base="sdxl").read_bytes()
    ws.hub.add_repo("tiny/ok", {"ok.safetensors": other})
    ws.hub.add_repo("tiny/broken", {"broken.safetensors": ws.lora_bytes})
    write_set(ws, GOOD, "{name: ok, source: 'tiny/ok::ok.safetensors'}",
              "{name: broken, source: 'tiny/broken::broken.safetensors'}")
    code, doc, _ = plan_doc(ws)
    assert code == 0 and {a["action"] for a in doc["actions"]} == {"create"}
    ws.hub.file_route("tiny/broken", "broken.safetensors").fail_statuses = [404] * 20  # the file goes away

    result = ws.apply()
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert line.startswith("create team/broken: ") and "broken.safetensors" in line, line
    assert "2 created; 1 failed" in result.stdout
    assert set(records(ws)) == {"good", "ok"}
    assert sorted(model_files(ws)) == ["sd-1/lora/good.safetensors", "sdxl/lora/ok.safetensors"]
    assert not any(p.name.startswith("broken") for p in ws.models_dir.rglob("*") if ".reconciler" not in p.parts)

    ws.hub.file_route("tiny/broken", "broken.safetensors").fail_statuses = []
    assert ws.apply().exit_code == 0, "the next apply converges"
    assert set(records(ws)) == {"good", "ok", "broken"}


def test_a_download_that_cannot_start_fails_alone(remote, monkeypatch):
    """A saved plan's remote action that cannot even be started (its resolution does not
    load) fails alone; the other download and the local model still install."""
    import reconciler.reconcile.apply as apply_mod
    from reconciler.errors import SourceError

    ws = remote
    ws.hub.add_repo("tiny/ok", {"ok.safetensors": write_lora_kohya(ws.root / "o.safetensors", base="sdxl").read_bytes()})
    ws.hub.add_repo("tiny/broken", {"broken.safetensors": ws.lora_bytes})
    write_set(ws, GOOD, "{name: ok, source: 'tiny/ok::ok.safetensors'}",
              "{name: broken, source: 'tiny/broken::broken.safetensors'}")
    planfile = ws.root / "plan.json"
    assert ws.cli("plan", "--out", str(planfile), str(ws.manifests)).exit_code == 0
    real = apply_mod.spec_to_resolved

    def failing(data, source, settings):
        if "broken" in str(source):
            raise SourceError("the saved resolution of tiny/broken does not load")
        return real(data, source, settings)

    monkeypatch.setattr(apply_mod, "spec_to_resolved", failing)
    result = ws.cli("apply", "-y", str(planfile))
    assert result.exit_code == 1, result.output
    assert error_lines(result) == ["create team/broken: the saved resolution of tiny/broken does not load"]
    assert set(records(ws)) == {"good", "ok"}


def test_a_local_install_that_fails_while_applying_fails_alone(good, monkeypatch):
    """A source that turns bad between plan and apply: its copy fails, the other installs."""
    ws = good
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    write_set(ws, GOOD, "{name: vae, source: ../files/vae.safetensors}")
    planfile = ws.root / "plan.json"
    assert ws.cli("plan", "--out", str(planfile), str(ws.manifests)).exit_code == 0
    write_not_a_model(ws.files / "vae.safetensors", "html")
    result = ws.cli("apply", "-y", str(planfile))
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert line.startswith("create team/vae: ") and "vae.safetensors" in line, line
    assert "1 created; 1 failed" in result.stdout
    assert set(records(ws)) == {"good"}
    assert list(model_files(ws)) == ["sd-1/lora/good.safetensors"]


def test_saved_plan_with_an_error_applies_the_rest(good):
    ws = good
    write_bad(ws, "text")
    write_set(ws, GOOD, bad_entry("text"))
    planfile = ws.root / "plan.json"
    planned = ws.cli("plan", "--out", str(planfile), str(ws.manifests))
    assert planned.exit_code == 1 and planfile.exists(), "the plan is saved, and the error still exits 1"
    (message,) = error_lines(planned)
    saved = {a["name"]: a for a in json.loads(planfile.read_text())["actions"]}
    assert saved["bad"]["action"] == "error" and saved["bad"]["error"] == message and saved["bad"]["install"] is None

    result = ws.cli("apply", "-y", "-o", "json", str(planfile))
    assert result.exit_code == 1
    assert error_lines(result) == [message]
    done = by_name(json.loads(result.stdout))
    assert done["good"]["result"] == "created" and done["bad"]["result"] == f"error: {message}"
    assert set(records(ws)) == {"good"}


def test_interactive_apply_shows_the_error_and_asks_only_for_real_work(good, monkeypatch):
    import reconciler.cli as cli_mod

    ws = good
    monkeypatch.setattr(cli_mod, "stdin_is_terminal", lambda: True)
    write_bad(ws, "text")
    write_set(ws, bad_entry("text"))
    only_errors = ws.cli("apply", str(ws.manifests), input="yes\n")
    assert only_errors.exit_code == 1 and "Do you want" not in only_errors.stdout, "nothing to ask about"
    (message,) = error_lines(only_errors)
    assert "x error    team/bad" in only_errors.stdout and "model 'bad'" in message
    write_set(ws, GOOD, bad_entry("text"))
    both = ws.cli("apply", str(ws.manifests), input="yes\n")
    assert both.exit_code == 1 and "Do you want" in both.stdout
    (line,) = error_lines(both)
    assert line == message.replace("m.yaml:7:", "m.yaml:8:") and set(records(ws)) == {"good"}


def test_a_saved_plan_cannot_smuggle_work_into_an_error_action(good):
    """An error action with an install spec (a hand-edited plan) is refused as damaged."""
    ws = good
    write_bad(ws, "text")
    write_set(ws, GOOD, bad_entry("text"))
    planfile = ws.root / "plan.json"
    ws.cli("plan", "--out", str(planfile), str(ws.manifests))
    doc = json.loads(planfile.read_text())
    for action in doc["actions"]:
        if action["name"] == "bad":
            action["action"] = "create"  # the error text stays: refused
    planfile.write_text(json.dumps(doc))
    result = ws.cli("apply", "-y", str(planfile))
    assert result.exit_code == 1 and "damaged" in result.stderr
    assert records(ws) == {}


# --- what stays fatal: nothing changes ---------------------------------------------------------------


def _installed(ws) -> None:
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    write_set(ws, GOOD, "{name: vae, source: ../files/vae.safetensors}")
    assert ws.apply().exit_code == 0


FATAL = ["unparseable_manifest", "invalid_manifest", "duplicate_names", "allow_empty", "max_deletions",
         "stale_saved_plan", "lock_held"]


@pytest.mark.parametrize("case", FATAL)
def test_fatal_cases_stop_everything_before_any_change(good, case, monkeypatch):
    ws = good
    _installed(ws)
    write_bad(ws, "text")
    # beside each fatal problem: a model that would install, and one that cannot be planned
    write_lora_kohya(ws.files / "new.safetensors", base="sdxl")
    new = "{name: new, source: ../files/new.safetensors}"
    args: tuple[str, ...] = ("apply", "-y", str(ws.manifests))
    needle = ""
    if case == "unparseable_manifest":
        write_set(ws, GOOD, new, bad_entry("text"))
        ws.write_manifest("broken.yaml", "spec:\n  models: [\n")
        needle = "broken.yaml:"
    elif case == "invalid_manifest":
        write_set(ws, GOOD, new, bad_entry("text"), "{name: typo, source: ../files/new.safetensors, sha265: x}")
        needle = "sha265"
    elif case == "duplicate_names":
        write_set(ws, GOOD, new, bad_entry("text"), "{name: new, source: ../files/vae.safetensors}")
        needle = "duplicate model name 'new'"
    elif case == "allow_empty":
        write_set(ws)
        ws.write_manifest("other.yaml", "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: other}\n"
                          f"spec:\n  models:\n    - {new}\n    - {bad_entry('text')}\n")
        needle = "--allow-empty"
    elif case == "max_deletions":
        write_set(ws, new, bad_entry("text"))
        args = ("apply", "-y", "--max-deletions", "1", str(ws.manifests))
        needle = "--max-deletions 2"
    elif case == "stale_saved_plan":
        write_set(ws, GOOD, new, bad_entry("text"))
        planfile = ws.root / "plan.json"
        assert ws.cli("plan", "--out", str(planfile), str(ws.manifests)).exit_code == 1
        write_set(ws, "{name: good, source: ../files/good.safetensors, description: moved on}",
                  "{name: vae, source: ../files/vae.safetensors}")
        assert ws.apply().exit_code == 0
        args, needle = ("apply", "-y", str(planfile)), "stale"
    elif case == "lock_held":
        from filelock import FileLock

        write_set(ws, GOOD, new, bad_entry("text"))
        monkeypatch.setenv("RECONCILER_APPLY_LOCK_TIMEOUT", "0.1")
        lock = FileLock(str(ws.models_dir / ".reconciler" / "apply.lock"))
        lock.acquire()
        needle = "another apply holds"
    before_records, before_files, before_snapshot = record_state(ws), model_files(ws), ws.snapshot()
    try:
        result = ws.cli(*args)
    finally:
        if case == "lock_held":
            lock.release()
    assert result.exit_code == 1, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and needle in lines[0], lines
    assert record_state(ws) == before_records
    assert model_files(ws) == before_files and ws.snapshot() == before_snapshot
    assert "new" not in records(ws)
