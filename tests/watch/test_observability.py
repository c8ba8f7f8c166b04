"""Watch observability: the status file, /healthz /readyz /metrics, systemd notify."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.reconcile import systemd
from reconciler.reconcile.watch_http import HealthServer, WatchMetrics, parse_listen
from reconciler.reconcile.watch_status import StatusFile, conditions, document

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass
class Report:
    """The fields of watch.ReconcileReport that observability reads."""

    trigger: str = "manifest"
    started: float = T0
    finished: float = T0 + 2.5
    result: str = "success"
    message: str = "1 created; 2 unchanged"
    actions: list[dict[str, Any]] = field(default_factory=lambda: [
        {"action": "create", "set": "studio", "name": "base15", "result": "ok"}])
    counts: dict[str, int] = field(default_factory=lambda: {"in_sync": 3})
    revision: Optional[str] = "9f1c2d3"
    last_success: Optional[float] = T0 + 2.5
    ready: bool = True


def failed(**kw: Any) -> Report:
    return Report(result="failed", message="hub unreachable: 503", ready=False, last_success=None, **kw)


def stalled(**kw: Any) -> Report:
    return Report(result="stalled", message="manifests/a.yaml:3:1: malformed YAML", ready=False, **kw)


def by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert [c["type"] for c in conds] == ["Ready", "Reconciling", "Stalled"]
    for c in conds:
        assert set(c) == {"type", "status", "reason", "message", "lastTransitionTime"}
        assert c["status"] in ("True", "False") and re.fullmatch(r"[A-Z][A-Za-z]+", c["reason"])
        assert ISO.match(c["lastTransitionTime"])
    return {c["type"]: c for c in conds}


# --- conditions -------------------------------------------------------------------------

def test_conditions_of_a_successful_ready_reconcile() -> None:
    c = by_type(conditions(Report()))
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("True", "ReconciliationSucceeded")
    assert c["Reconciling"]["status"] == "False" and c["Stalled"]["status"] == "False"
    assert c["Ready"]["lastTransitionTime"] == "2023-11-14T22:13:22Z"


def test_conditions_of_a_failed_reconcile_say_it_is_retried() -> None:
    c = by_type(conditions(failed()))
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "ReconciliationFailed")
    assert (c["Reconciling"]["status"], c["Reconciling"]["reason"]) == ("True", "ProgressingWithRetry")
    assert c["Stalled"]["status"] == "False"
    assert c["Ready"]["message"] == "hub unreachable: 503"


def test_conditions_of_a_stalled_reconcile() -> None:
    c = by_type(conditions(stalled()))
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "ReconciliationStalled")
    assert (c["Stalled"]["status"], c["Stalled"]["reason"]) == ("True", "ReconciliationStalled")
    assert c["Reconciling"]["status"] == "False"
    assert "malformed YAML" in c["Stalled"]["message"]


def test_a_success_that_is_not_ready_is_still_progressing() -> None:
    c = by_type(conditions(Report(ready=False, counts={"in_sync": 1, "missing": 1})))
    assert (c["Ready"]["status"], c["Ready"]["reason"]) == ("False", "ModelsNotReady")
    assert c["Reconciling"]["status"] == "True" and c["Stalled"]["status"] == "False"


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    first = conditions(Report(finished=T0))
    same = by_type(conditions(Report(finished=T0 + 600), previous=first))
    assert same["Ready"]["lastTransitionTime"] == "2023-11-14T22:13:20Z"
    flipped = by_type(conditions(failed(finished=T0 + 1200), previous=first))
    assert flipped["Ready"]["lastTransitionTime"] == "2023-11-14T22:33:20Z"
    assert flipped["Stalled"]["lastTransitionTime"] == "2023-11-14T22:13:20Z"  # still False


# --- the status file --------------------------------------------------------------------

def test_status_file_document(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    StatusFile(path).write(Report())
    doc = json.loads(path.read_text())
    assert set(doc) == {"format_version", "kind", "observedGeneration", "revision", "trigger", "result",
                        "message", "lastAttemptTime", "lastAttemptDuration", "lastSuccessTime", "ready",
                        "conditions", "counts", "actions"}
    assert doc["format_version"] == 1 and doc["kind"] == "ReconcilerWatchStatus"
    assert doc["observedGeneration"] == 1
    assert doc["revision"] == "9f1c2d3" and doc["trigger"] == "manifest" and doc["result"] == "success"
    assert doc["lastAttemptTime"] == "2023-11-14T22:13:20Z"
    assert doc["lastSuccessTime"] == "2023-11-14T22:13:22Z"
    assert doc["lastAttemptDuration"] == 2.5
    assert doc["ready"] is True
    assert doc["counts"] == {"in_sync": 3}
    assert doc["actions"] == [{"action": "create", "set": "studio", "name": "base15", "result": "ok"}]
    assert by_type(doc["conditions"])["Ready"]["status"] == "True"
    assert doc == json.loads(json.dumps(document(Report(), 1)))
    assert '\n  "ready": true,\n' in path.read_text()  # examples/kubernetes/README.md greps for it
    assert os.listdir(path.parent) == ["status.json"]  # no temporary file left beside it


def test_status_file_generation_and_transition_times_carry_on(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = StatusFile(path)
    status.write(Report(finished=T0))
    status.write(failed(finished=T0 + 60))
    doc = json.loads(path.read_text())
    assert doc["observedGeneration"] == 2 and doc["result"] == "failed" and doc["lastSuccessTime"] is None
    # a restarted watcher continues the count and keeps unchanged conditions' times
    StatusFile(path).write(failed(finished=T0 + 120))
    doc = json.loads(path.read_text())
    assert doc["observedGeneration"] == 3
    assert by_type(doc["conditions"])["Ready"]["lastTransitionTime"] == "2023-11-14T22:14:20Z"
    assert sorted(os.listdir(tmp_path)) == ["status.json"]


def test_a_failed_write_keeps_the_old_document_and_leaves_no_temp_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "status.json"
    status = StatusFile(path)
    status.write(Report())
    before = path.read_bytes()

    def boom(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        status.write(failed())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["status.json"]


def test_status_file_owns_its_own_writes(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / "status.json")
    assert status.owns(tmp_path / "status.json")
    assert status.owns(tmp_path / ".status.json.k2j3h4.tmp")
    assert not status.owns(tmp_path / "other.json")
    assert not status.owns(tmp_path / "sub" / "status.json")


def test_a_concurrent_reader_never_sees_a_partial_status_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = StatusFile(path)
    big = Report(actions=[{"action": "create", "set": "s", "name": f"model-{i:04d}", "result": "ok"}
                          for i in range(3000)])  # about 250 KB: many write() calls if not atomic
    small = failed()
    status.write(small)
    done = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            data = path.read_bytes()
            reads += 1
            try:
                json.loads(data)
            except ValueError:
                bad.append(f"{len(data)} bytes")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            status.write(big if i % 2 else small)
    finally:
        done.set()
        thread.join()
    assert not bad, f"reader saw {len(bad)} partial documents of {reads} reads: {bad[:3]}"
    assert reads > 10
    assert json.loads(path.read_text())["observedGeneration"] == 61
    assert os.listdir(tmp_path) == ["status.json"]


# --- /healthz, /readyz, /metrics --------------------------------------------------------

class FakeWatcher:
    def __init__(self) -> None:
        self.is_alive = True
        self.last_report: Optional[Report] = None
        self.pending = 0
        self.metrics = WatchMetrics()

    def alive(self) -> bool:
        return self.is_alive

    def pending_triggers(self) -> int:
        return self.pending


@pytest.fixture
def served() -> Iterator[tuple[FakeWatcher, str]]:
    watcher = FakeWatcher()
    server = HealthServer("127.0.0.1", 0, watcher)
    server.start()
    try:
        assert server.port and server.port != 0
        yield watcher, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), err.headers.get("Content-Type", "")


def test_healthz_follows_the_loop(served: tuple[FakeWatcher, str]) -> None:
    watcher, base = served
    assert get(base + "/healthz")[:2] == (200, "ok\n")
    watcher.is_alive = False
    code, body, _ = get(base + "/healthz")
    assert code == 503 and "not alive" in body
    assert get(base + "/nothing")[0] == 404


def test_readyz_follows_the_last_report_with_its_reason(served: tuple[FakeWatcher, str]) -> None:
    watcher, base = served
    code, body, _ = get(base + "/readyz")
    assert code == 503 and "NoReconcileYet" in body
    watcher.last_report = Report()
    assert get(base + "/readyz")[:2] == (200, "ok\n")
    watcher.last_report = failed()
    code, body, _ = get(base + "/readyz")
    assert code == 503 and body == "not ready: ReconciliationFailed: hub unreachable: 503\n"
    watcher.last_report = stalled()
    code, body, _ = get(base + "/readyz")
    assert code == 503 and "ReconciliationStalled" in body and "malformed YAML" in body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_metrics_after_observe(served: tuple[FakeWatcher, str]) -> None:
    watcher, base = served
    watcher.metrics.observe(Report(counts={"in_sync": 3, "missing": 1}), bytes_downloaded=1234)
    watcher.metrics.observe(failed(started=T0 + 10, finished=T0 + 10.2, counts={"in_sync": 2, "drifted": 1}),
                            bytes_downloaded=100)
    watcher.metrics.observe(stalled(started=T0 + 20, finished=T0 + 20.1, last_success=T0 + 2.5,
                                    counts={"in_sync": 2, "drifted": 1}), bytes_downloaded=0)
    watcher.pending = 4
    code, text, ctype = get(base + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    s = samples(text)
    no = frozenset()
    assert s[("reconciler_reconciles_total", frozenset({("result", "success")}))] == 1
    assert s[("reconciler_reconciles_total", frozenset({("result", "failed")}))] == 1
    assert s[("reconciler_reconciles_total", frozenset({("result", "stalled")}))] == 1
    assert s[("reconciler_reconcile_duration_seconds_count", no)] == 3
    assert s[("reconciler_reconcile_duration_seconds_sum", no)] == pytest.approx(2.8)
    assert s[("reconciler_reconcile_duration_seconds_bucket", frozenset({("le", "0.25")}))] == 2
    assert s[("reconciler_reconcile_duration_seconds_bucket", frozenset({("le", "2.5")}))] == 3
    assert s[("reconciler_models", frozenset({("state", "in_sync")}))] == 2
    assert s[("reconciler_models", frozenset({("state", "drifted")}))] == 1
    assert s[("reconciler_models", frozenset({("state", "missing")}))] == 0  # gone since, not stale
    assert s[("reconciler_models", frozenset({("state", "unmanaged")}))] == 0
    assert s[("reconciler_downloaded_bytes_total", no)] == 1334
    assert s[("reconciler_last_success_timestamp_seconds", no)] == T0 + 2.5
    assert s[("reconciler_ready", no)] == 0
    assert s[("reconciler_pending_triggers", no)] == 4
    watcher.pending = 7  # read at scrape time, not when observed
    assert samples(get(base + "/metrics")[1])[("reconciler_pending_triggers", no)] == 7


def test_metrics_before_any_reconcile_and_as_openmetrics(served: tuple[FakeWatcher, str]) -> None:
    _, base = served
    s = samples(get(base + "/metrics")[1])
    for result in ("success", "failed", "stalled"):
        assert s[("reconciler_reconciles_total", frozenset({("result", result)}))] == 0
    assert s[("reconciler_models", frozenset({("state", "in_sync")}))] == 0
    req = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().decode().rstrip().endswith("# EOF")


def test_each_watcher_has_its_own_registry() -> None:
    a, b = WatchMetrics(), WatchMetrics()  # the global registry would refuse the second
    a.observe(Report(), bytes_downloaded=10)
    assert a.registry.get_sample_value("reconciler_reconciles_total", {"result": "success"}) == 1
    assert b.registry.get_sample_value("reconciler_reconciles_total", {"result": "success"}) == 0
    assert a.registry.get_sample_value("reconciler_ready") == 1


def test_a_watcher_without_metrics_gets_them_from_the_server() -> None:
    watcher = FakeWatcher()
    watcher.metrics = None  # type: ignore[assignment]
    with HealthServer("127.0.0.1", 0, watcher) as server:
        assert isinstance(watcher.metrics, WatchMetrics)
        watcher.metrics.observe(Report(), bytes_downloaded=5)
        watcher.pending = 2
        s = samples(get(f"http://127.0.0.1:{server.port}/metrics")[1])
    assert s[("reconciler_reconciles_total", frozenset({("result", "success")}))] == 1
    assert s[("reconciler_pending_triggers", frozenset())] == 2


def test_stop_releases_the_port() -> None:
    server = HealthServer("127.0.0.1", 0, FakeWatcher())
    server.start()
    port = server.port
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    again = HealthServer("127.0.0.1", port, FakeWatcher())
    again.start()  # the port can be bound again
    again.stop()


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    assert parse_listen(":9464") == ("0.0.0.0", 9464)
    for bad in ("9464", "host:", "host:http", "host:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


# --- systemd ----------------------------------------------------------------------------

@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    with tempfile.TemporaryDirectory(prefix="sd", dir="/tmp") as d:  # AF_UNIX paths are short
        path = os.path.join(d, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(5)
            yield sock, path


def test_notify_sends_a_datagram(notify_socket: tuple[socket.socket, str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.notify("READY=1") is True
    assert sock.recv(4096) == b"READY=1"
    assert systemd.notify("WATCHDOG=1") is True
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"reconciler-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("STATUS=reconciling\nREADY=1") is True
        assert sock.recv(4096) == b"STATUS=reconciling\nREADY=1"


def test_notify_without_a_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert systemd.notify("READY=1") is False  # never raises into the loop


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None  # meant for another process
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert systemd.watchdog_interval() is None
