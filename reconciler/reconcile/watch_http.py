"""Health, readiness and Prometheus metrics of ``reconciler watch --listen HOST:PORT``.

``HealthServer(host, port, watcher)`` serves, from a daemon thread:

- ``GET /healthz``: 200 ``ok`` while ``watcher.alive()``, else 503 (a liveness probe);
- ``GET /readyz``: 200 ``ok`` when the last reconcile report says ``ready`` (it succeeded and
  every declared model is in sync, and warm where asked), else 503 with the reason
  (``not ready: ReconciliationFailed: <message>``; before the first reconcile
  ``NoReconcileYet``): a readiness probe;
- ``GET /metrics``: the watcher's :class:`WatchMetrics` in Prometheus text (or OpenMetrics
  when the scraper asks for it), from ``prometheus_client``.

The watcher is duck-typed: ``alive() -> bool``, ``last_report`` (a ReconcileReport or None),
``pending_triggers() -> int`` and ``metrics`` (a :class:`WatchMetrics`; when it is None,
HealthServer sets a new one on the watcher, whose loop then calls its ``observe``).

Metrics (each watcher has its own ``CollectorRegistry``, never the global one):

=============================================  =========  ==========================================
name                                           type       meaning
=============================================  =========  ==========================================
``reconciler_reconciles_total{result}``        counter    reconciles finished, by result
                                                          (``success``, ``failed``, ``stalled``)
``reconciler_reconcile_duration_seconds``      histogram  how long each reconcile took
``reconciler_models{state}``                   gauge      models by state after the last reconcile
                                                          (``in_sync``, ``drifted``, ``missing``,
                                                          ``unmanaged``, ...)
``reconciler_downloaded_bytes_total``          counter    bytes downloaded by reconciles
``reconciler_last_success_timestamp_seconds``  gauge      epoch of the last successful reconcile
``reconciler_ready``                           gauge      1 when the last report was ready, else 0
``reconciler_pending_triggers``                gauge      triggers waiting for the next reconcile
                                                          (read from the watcher at scrape time)
=============================================  =========  ==========================================
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from reconciler.reconcile.watch_status import ready_reason

log = logging.getLogger(__name__)

RESULTS = ("success", "failed", "stalled")
#: states always exported (0 when none), so a dashboard's series exist from the start
STATES = ("in_sync", "drifted", "missing", "unmanaged")
#: reconcile durations: a no-op pass takes well under a second, a first install hours
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)


class WatchMetrics:
    """The watch loop's Prometheus metrics, in a registry of their own."""

    def __init__(self, registry: Optional[CollectorRegistry] = None,
                 pending_triggers: Optional[Callable[[], int]] = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("reconciler_reconciles", "Reconciles finished, by result", ["result"],
                                  registry=r)
        for result in RESULTS:
            self.reconciles.labels(result=result)
        self.duration = Histogram("reconciler_reconcile_duration_seconds", "Duration of each reconcile",
                                  buckets=DURATION_BUCKETS, registry=r)
        self.models = Gauge("reconciler_models", "Models by state after the last reconcile", ["state"],
                            registry=r)
        self._states: set[str] = set(STATES)
        for state in STATES:
            self.models.labels(state=state)
        self.downloaded = Counter("reconciler_downloaded_bytes", "Bytes downloaded by reconciles", registry=r)
        self.last_success = Gauge("reconciler_last_success_timestamp_seconds",
                                  "Unix time of the last successful reconcile", registry=r)
        self.ready = Gauge("reconciler_ready", "1 when the last reconcile left every model ready", registry=r)
        self.pending = Gauge("reconciler_pending_triggers", "Triggers waiting for the next reconcile",
                             registry=r)
        if pending_triggers is not None:
            self.track_pending(pending_triggers)

    def track_pending(self, pending_triggers: Callable[[], int]) -> None:
        """Read the pending-trigger count from ``pending_triggers()`` at each scrape."""
        def read() -> float:
            try:
                return float(pending_triggers())
            except Exception:  # a scrape never fails because of the watcher
                return math.nan
        self.pending.set_function(read)

    def observe(self, report: Any, bytes_downloaded: int = 0) -> None:
        """Account one finished reconcile and the bytes it downloaded."""
        self.reconciles.labels(result=report.result).inc()
        self.duration.observe(max(0.0, report.finished - report.started))
        counts = dict(report.counts or {})
        self._states.update(counts)
        for state in self._states:
            self.models.labels(state=state).set(counts.get(state, 0))
        if bytes_downloaded > 0:
            self.downloaded.inc(bytes_downloaded)
        if report.last_success is not None:
            self.last_success.set(report.last_success)
        self.ready.set(1 if report.ready else 0)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``127.0.0.1:9464``, ``[::1]:9464``, ``:9464`` for all addresses)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen wants HOST:PORT, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], watcher: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.watcher = watcher
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "reconciler-watch"

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        watcher = self.server.watcher
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                if watcher.alive():
                    self._send(200, b"ok\n")
                else:
                    self._send(503, b"not alive: the watch loop has stopped\n")
            elif path == "/readyz":
                report = watcher.last_report
                if report is not None and report.ready:
                    self._send(200, b"ok\n")
                else:
                    self._send(503, f"not ready: {ready_reason(report)}\n".encode())
            elif path == "/metrics":
                metrics = getattr(watcher, "metrics", None)
                registry = metrics.registry if metrics is not None else CollectorRegistry()
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(registry), content_type)
            else:
                self._send(404, b"not found: /healthz, /readyz, /metrics\n")
        except Exception as exc:  # the probe says so instead of dropping the connection
            log.debug("health endpoint %s failed", path, exc_info=True)
            self._send(500, f"error: {type(exc).__name__}: {exc}\n".encode())

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` of a watcher, served from a daemon thread."""

    def __init__(self, host: str, port: int, watcher: Any) -> None:
        self.host = host
        self.requested_port = port
        self.watcher = watcher
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        # a watcher without metrics gets them here: they are served only with --listen
        metrics = getattr(watcher, "metrics", None)
        if metrics is None:
            metrics = watcher.metrics = WatchMetrics()
        if hasattr(watcher, "pending_triggers"):
            metrics.track_pending(watcher.pending_triggers)

    @property
    def port(self) -> Optional[int]:
        """The port bound (the one chosen by the system when 0 was asked for); None before start."""
        return self._server.server_address[1] if self._server is not None else None

    def start(self) -> None:
        """Bind (OSError when the address is taken) and serve in a daemon thread."""
        if self._server is not None:
            return
        self._server = _Server((self.host, self.requested_port), self.watcher)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="reconciler-health", daemon=True)
        self._thread.start()
        log.info("serving /healthz, /readyz and /metrics on %s:%s", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
