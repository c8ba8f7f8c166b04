"""Planted tokens never leak: not in any output at the highest verbosity, not in exception
text or tracebacks, events, the record store, the lock file, plan JSON or a saved plan;
and an Authorization header only ever goes to the host (and API) it was meant for,
redirects included.

Each token is distinctive, so a grep over everything the runs printed and every file they
wrote finds any copy of it (the manifest, which the user wrote, and the stored login file
are the only places allowed to hold one)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main as cli_main
from reconciler.testing.models import write_lora_kohya
from tests.integrity.helpers import manifest, record_names

HF_ENV = "hf_PLANTEDenvTOKENaaaa0001"
HF_STORED = "hf_PLANTEDstoredLOGINbbbb0002"
CIV_ENV = "PLANTEDcivitaiENVcccc0003"
CIV_SRC = "PLANTEDcivitaiSOURCEdddd0004"
CIV_WRONG = "PLANTEDcivitaiWRONGeeee0005"
ALL = (HF_ENV, HF_STORED, CIV_ENV, CIV_SRC, CIV_WRONG)


def run(ws, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`reconciler --models-dir <models> ARGS` in a fresh process (its real logging setup)."""
    cmd = [sys.executable, "-m", "reconciler.cli", "--models-dir", str(ws.models_dir), *args]
    return subprocess.run(cmd, cwd=ws.root, env=env, capture_output=True, text=True, timeout=120, check=False)


def base_env(ws) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "CIVITAI_API_TOKEN", "HF_HUB_DISABLE_IMPLICIT_TOKEN")}
    env.update(HF_ENDPOINT=ws.hub.endpoint, RECONCILER_CIVITAI_ENDPOINT=ws.hub.civitai_endpoint,
               HF_TOKEN_PATH=str(ws.root / "hf-home" / "token"), HF_HUB_DISABLE_TELEMETRY="1",
               RECONCILER_DOWNLOAD_RETRIES="1", COLUMNS="200")
    return env


def hub_redirects_to_cdn(hub, repo: str, path: str) -> None:
    """Make the hub answer ``resolve`` of an LFS file as huggingface.co does: a 302 to a CDN
    (another host:port) carrying the file's headers; the CDN serves the bytes."""
    f = hub.file(repo, path)
    cdn_path = f"/lfs/{f.sha256}"
    hub.cdn.add_file(cdn_path, data=f.data)
    headers = {"Location": hub.cdn.url(cdn_path), "X-Repo-Commit": hub.head(repo), "ETag": f'"{f.sha256}"',
               "X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)}
    f.route.handler = lambda _rec: (302, headers, b"")


def written_files(root: Path) -> list[Path]:
    """Every file under the workspace but the user's own manifests and stored login."""
    skip = {root / "manifests", root / "hf-home"}
    return [p for p in root.rglob("*") if p.is_file() and not any(s in p.parents for s in skip)]


def assert_no_token(where: str, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    for token in ALL:
        assert token.encode() not in data, f"{token} leaked into {where}"


def assert_authorization_scoped(hub) -> None:
    """Hugging Face tokens went to the hub only, Civitai tokens to the Civitai site only (the
    fake hub serves both from one port, Civitai under /civitai), and the CDN (another port,
    where both redirect their downloads) never saw an Authorization header."""
    sent = hub.authorizations()
    assert sent, "the runs needed their tokens"
    for path, value in sent:
        token = value.removeprefix("Bearer ")
        if token.startswith("hf_"):
            assert not path.startswith("/civitai"), (path, "a Hugging Face token went to Civitai")
        else:
            assert path.startswith("/civitai/"), (path, "a Civitai token went off the Civitai site")
    for record in hub.cdn.requests:
        assert not any(k.lower() == "authorization" for k in record.headers), record.path


@pytest.fixture
def secret_ws(remote_ws, tmp_path_factory):
    ws = remote_ws
    hub = ws.hub
    root = tmp_path_factory.mktemp("src")
    gated = write_lora_kohya(root / "g.safetensors", base="sd-1").read_bytes()
    hub.add_repo("tiny/gated", {"gated.safetensors": gated, "README.md": b"# gated\n"})
    hub.set_gated("tiny/gated", HF_ENV)
    hub_redirects_to_cdn(hub, "tiny/gated", "gated.safetensors")
    for version, model, token, base in ((111, 11, CIV_ENV, "sd-1"), (222, 22, CIV_SRC, "sdxl"),
                                        (333, 33, "a-token-nobody-has", "sd-1")):
        data = write_lora_kohya(root / f"{version}.safetensors", base=base).read_bytes()
        hub.add_civitai_version(version, model, [{"name": f"c{version}.safetensors", "bytes": data,
                                                  "primary": True}], token=token,
                                base_model="SDXL 1.0" if base == "sdxl" else "SD 1.5")
    manifest(ws,
             "{name: gated, source: 'tiny/gated::gated.safetensors'}",
             "{name: civ-env, source: 'civitai:111'}",
             f"{{name: civ-src, source: 'https://civitai.com/api/download/models/222?token={CIV_SRC}'}}",
             f"{{name: civ-wrong, source: 'https://civitai.com/models/33?modelVersionId=333&token={CIV_WRONG}'}}")
    return ws


def test_planted_tokens_never_leak_at_any_verbosity(secret_ws):
    ws = secret_ws
    env = {**base_env(ws), "HF_TOKEN": HF_ENV, "CIVITAI_API_TOKEN": CIV_ENV}
    m = str(ws.manifests)
    runs = {
        "lock": run(ws, "-vv", "lock", m, env=env),
        "plan -o json": run(ws, "-vv", "plan", "-o", "json", m, env=env),
        "plan --out": run(ws, "-vv", "plan", "--out", str(ws.root / "saved.plan"), m, env=env),
        "apply saved plan": run(ws, "-vv", "apply", "-y", str(ws.root / "saved.plan"), env=env),
        "apply": run(ws, "-vv", "apply", "-y", m, env=env),
        "apply -o json": run(ws, "-v", "apply", "-y", "-o", "json", m, env=env),
        "status": run(ws, "-vv", "status", env=env),
        "status -o json": run(ws, "-vv", "status", "-o", "json", env=env),
        "validate": run(ws, "-vv", "validate", m, env=env),
    }
    for what, proc in runs.items():
        assert_no_token(f"`{what}` stdout", proc.stdout)
        assert_no_token(f"`{what}` stderr", proc.stderr)
    assert runs["lock"].returncode == 0, runs["lock"].stderr
    plan = json.loads(runs["plan -o json"].stdout)
    assert {a["name"] for a in plan["actions"]} == {"gated", "civ-env", "civ-src", "civ-wrong"}
    # what was installed needed every token but the wrong one; that model failed, saying why
    assert record_names(ws) == {"gated", "civ-env", "civ-src"}, runs["apply"].stderr + runs["apply"].stdout
    failed = runs["apply"].stdout + runs["apply"].stderr
    assert runs["apply"].returncode == 1 and "civ-wrong" in failed and "token" in failed
    assert "Traceback" in runs["apply"].stderr, "-vv shows the failure's traceback, scrubbed"
    # the stored source keeps no token; the lock and saved plan hold none
    (src,) = [r for r in ws.records() if r.name == "civ-src"]
    assert src.source == "civitai:222"
    files = written_files(ws.root)
    assert {"reconciler.lock", "saved.plan", "records.db"} <= {p.name for p in files}
    for path in files:
        assert_no_token(str(path.relative_to(ws.root)), path.read_bytes())
    assert_authorization_scoped(ws.hub)
    # the downloads did go through the redirects the test is about
    sha = ws.hub.file("tiny/gated", "gated.safetensors").sha256
    assert ws.hub.cdn.count(f"/lfs/{sha}", "GET") >= 1
    assert any(p.endswith("/gated.safetensors") and v == f"Bearer {HF_ENV}" for p, v in ws.hub.authorizations())
    assert ws.hub.cdn.count("/files/222/c222.safetensors", "GET") >= 1


def test_a_stored_login_is_used_for_the_hub_only_and_never_shown(secret_ws):
    ws = secret_ws
    ws.hub.set_gated("tiny/gated", HF_STORED)
    (ws.root / "hf-home").mkdir()
    (ws.root / "hf-home" / "token").write_text(HF_STORED)
    manifest(ws, "{name: gated, source: 'tiny/gated::gated.safetensors'}")
    proc = run(ws, "-vv", "apply", "-y", str(ws.manifests), env=base_env(ws))
    assert proc.returncode == 0, proc.stderr
    assert_no_token("apply stdout", proc.stdout)
    assert_no_token("apply stderr", proc.stderr)
    assert record_names(ws) == {"gated"}
    for path in written_files(ws.root):
        assert_no_token(str(path.relative_to(ws.root)), path.read_bytes())
    assert any(v == f"Bearer {HF_STORED}" for _p, v in ws.hub.authorizations())
    assert_authorization_scoped(ws.hub)


def test_events_and_job_errors_carry_no_token(secret_ws, monkeypatch):
    """In-process, through the library: every event payload and every error text."""
    from reconciler import apply, load_settings

    ws = secret_ws
    monkeypatch.setenv("HF_TOKEN", HF_ENV)
    monkeypatch.setenv("CIVITAI_API_TOKEN", CIV_ENV)
    monkeypatch.setenv("RECONCILER_DOWNLOAD_RETRIES", "1")
    events: list[Any] = []
    settings = load_settings(models_dir=str(ws.models_dir))
    result = apply([ws.manifests], settings, event_handlers=[events.append])
    assert {a.name for a in result.failed} == {"civ-wrong"}
    assert events
    assert_no_token("events", repr([(e.name, e.payload) for e in events]))
    assert_no_token("action results", repr([(a.name, a.result) for a in result.plan.actions]))
    assert_no_token("the plan's JSON", result.plan.model_dump_json())


URL_TOKEN = "PLANTEDurlQUERYffff0006"
URL_SIG = "PLANTEDsignatureGGGG0007aaaaaaaaaaaaaaaaaaaaaaaaa"


def test_a_secret_in_a_plain_url_source_is_redacted_wherever_the_source_is_shown(remote_ws, tmp_path, caplog,
                                                                                monkeypatch):
    """A presigned or tokened link (``?token=``, ``X-Amz-Signature=``): the bytes are fetched
    from the URL as written, while records, lock, plans, logs and messages show it redacted;
    a repair (which downloads again) still uses the real URL."""
    from reconciler.download import segments

    ws = remote_ws
    data = write_lora_kohya(tmp_path / "s.safetensors", base="sd-1").read_bytes()
    ws.hub.server.add_file("/files/signed.safetensors", data=data, etag='"signed"')
    url = f"{ws.hub.url('/files/signed.safetensors')}?X-Amz-Signature={URL_SIG}&token={URL_TOKEN}&v=2"
    manifest(ws, f"{{name: signed, source: '{url}'}}")
    fetched: list[str] = []
    real_open = segments.open_stream

    def spy(session, target, **kw):
        fetched.append(target)
        return real_open(session, target, **kw)

    monkeypatch.setattr(segments, "open_stream", spy)
    caplog.set_level(logging.DEBUG)
    outputs = []
    for args in (("lock",), ("plan", "-o", "json"), ("plan", "--out", str(ws.root / "saved.plan")),
                 ("apply", "-y"), ("status", "-o", "json"), ("status",)):
        paths = [str(ws.manifests)] if args[0] in ("lock", "plan", "apply") else []
        result = ws.runner.invoke(cli_main, ["-vv", "--models-dir", str(ws.models_dir), *args, *paths])
        outputs.append(result.output)
        assert result.exit_code == 0, (args, result.output)
    (rec,) = ws.records()
    assert (ws.models_dir / rec.path).read_bytes() == data
    assert "token=***" in rec.source and "X-Amz-Signature=***" in rec.source and "v=2" in rec.source
    # a repair downloads again: from the real URL, which only the manifest holds
    (ws.models_dir / rec.path).unlink()
    fetched.clear()
    result = ws.apply()
    assert result.exit_code == 0, result.output
    outputs.append(result.output)
    assert fetched and all(URL_TOKEN in f and URL_SIG in f for f in fetched), fetched
    assert (ws.models_dir / rec.path).read_bytes() == data
    for what, text in [("outputs", "\n".join(outputs)), ("logs", caplog.text)]:
        assert URL_TOKEN not in text and URL_SIG not in text, what
    for path in written_files(ws.root):
        blob = path.read_bytes()
        assert URL_TOKEN.encode() not in blob and URL_SIG.encode() not in blob, path


def test_a_bad_source_with_a_token_is_reported_without_it(remote_ws):
    ws = remote_ws
    manifest(ws, f"{{name: bad, source: 'https://civitai.com/models/abc?token={CIV_SRC}'}}")
    for args in (("validate",), ("plan",), ("apply", "-y")):
        result = ws.cli("-v", *args, str(ws.manifests))
        assert result.exit_code == 1
        assert "civitai.com/models/abc" in result.output, result.output
        assert CIV_SRC not in result.output, result.output


def test_a_saved_plan_never_holds_a_url_secret_and_says_so_when_applied(remote_ws, tmp_path):
    ws = remote_ws
    data = write_lora_kohya(tmp_path / "s.safetensors", base="sd-1").read_bytes()
    ws.hub.server.add_file("/files/signed.safetensors", data=data, etag='"signed"')
    url = f"{ws.hub.url('/files/signed.safetensors')}?token={URL_TOKEN}"
    manifest(ws, f"{{name: signed, source: '{url}'}}")
    saved = ws.root / "saved.plan"
    assert ws.cli("plan", "--out", str(saved), str(ws.manifests)).exit_code == 0
    assert URL_TOKEN.encode() not in saved.read_bytes()
    ws.hub.server.reset_counters()
    result = ws.cli("apply", "-y", str(saved))
    assert result.exit_code == 1
    assert "token=***" in result.output and "apply the manifests" in result.output, result.output
    assert URL_TOKEN not in result.output
    assert ws.hub.server.count("/files/signed.safetensors") == 0, "no request with a mangled secret"
    assert ws.apply().exit_code == 0, "from the manifests it installs"
