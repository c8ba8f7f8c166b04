"""A real, threaded HTTP/1.1 server on 127.0.0.1 with switchable faults, for tests and benches.

Reusable beyond downloads (a fake Hugging Face hub can hang JSON routes on it)::

    with FaultServer() as srv:                       # port 0: a free port
        r = srv.add_file("/m.bin", data=b"...", content_disposition='attachment; filename="x.bin"')
        r.fail_statuses = [503, 429]; r.retry_after = "1"   # answer these first, then serve
        r.reset_after = 1000                             # RST after 1000 body bytes (reset_times)
        srv.add_redirect("/go", other.url("/m.bin"))     # cross-host: another FaultServer's port
        srv.add_handler("/api/x", lambda req: (200, {"Content-Type": "application/json"}, b"{}"))
        requests.get(srv.url("/m.bin"))
        srv.requests[-1].headers, srv.bytes_sent, srv.bytes_sent_for("/m.bin"), srv.count("/m.bin")

Per-route switches: ranges, content_disposition, etag, require_token, fail_statuses +
retry_after, reset_after/reset_times, truncate_at/truncate_times (announce the full
Content-Length, then close), drip=(bytes, seconds), rate (bytes/s per connection;
``FaultServer(rate=...)`` sets it for every route), content_type, extra headers.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Handler = Callable[["RequestRecord"], tuple[int, dict[str, str], bytes]]


@dataclass
class RequestRecord:
    """What the server saw of one request."""

    method: str
    path: str
    headers: dict[str, str]
    range: str | None
    client_port: int


@dataclass
class Route:
    """A path's content and its faults; mutate fields freely between requests."""

    data: bytes | None = None
    file: Path | None = None
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    ranges: bool = True
    content_disposition: str | None = None
    etag: str | None = None
    last_modified: str | None = "Wed, 21 Oct 2015 07:28:00 GMT"
    require_token: str | None = None
    fail_statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    reset_after: int | None = None
    reset_times: int = 1
    truncate_at: int | None = None
    truncate_times: int = 1
    drip: tuple[int, float] | None = None
    rate: int | None = None
    redirect: str | None = None
    redirect_status: int = 302
    handler: Handler | None = None

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.file is not None
        return self.file.stat().st_size

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[offset:offset + n]
        assert self.file is not None
        with open(self.file, "rb") as f:
            return os.pread(f.fileno(), n, offset)


class _Reset(Exception):
    pass


class FaultServer:
    """The server; see the module docstring.  Use as a context manager or call close()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, rate: int | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[RequestRecord] = []
        self.rate = rate
        self._lock = threading.Lock()
        self._sent: dict[str, int] = {}
        server = self

        class _H(_RequestHandler):
            fault_server = server

        self._httpd = ThreadingHTTPServer((host, port), _H)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"fault-server-{self.port}")
        self._thread.start()

    # --- configuration ---------------------------------------------------------------------
    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://{self.host}:{self.port}{path}"

    def add_file(self, path: str, data: bytes | None = None, file: Path | None = None, **opts: Any) -> Route:
        """Serve ``data`` (or the file at ``file``) at ``path``; ``opts`` set Route fields."""
        route = Route(data=data, file=Path(file) if file else None, **opts)
        self.routes[path] = route
        return route

    def add_redirect(self, path: str, location: str, status: int = 302) -> Route:
        """Answer ``path`` with a redirect to ``location`` (absolute or relative)."""
        route = Route(redirect=location, redirect_status=status)
        self.routes[path] = route
        return route

    def add_handler(self, path: str, handler: Handler) -> Route:
        """Answer ``path`` (query ignored) with ``handler(record) -> (status, headers, body)``."""
        route = Route(handler=handler)
        self.routes[path] = route
        return route

    # --- counters ----------------------------------------------------------------------------
    @property
    def bytes_sent(self) -> int:
        """Body bytes written to sockets, all paths."""
        with self._lock:
            return sum(self._sent.values())

    def bytes_sent_for(self, path: str) -> int:
        """Body bytes written for one path."""
        with self._lock:
            return self._sent.get(path, 0)

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests received (for a path, a method)."""
        with self._lock:
            return sum(1 for r in self.requests
                       if (path is None or r.path == path) and (method is None or r.method == method))

    def reset_counters(self) -> None:
        """Forget recorded requests and byte counts."""
        with self._lock:
            self.requests.clear()
            self._sent.clear()

    def _add_sent(self, path: str, n: int) -> None:
        with self._lock:
            self._sent[path] = self._sent.get(path, 0) + n

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fault_server: FaultServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    # --- helpers -----------------------------------------------------------------------------
    def _simple(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"",
                head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Reset()

    def _serve(self, head: bool) -> None:
        srv = self.fault_server
        path = self.path.split("?", 1)[0]
        record = RequestRecord(self.command, path, dict(self.headers.items()), self.headers.get("Range"),
                               self.client_address[1])
        with srv._lock:
            srv.requests.append(record)
        route = srv.routes.get(path)
        try:
            if route is None:
                return self._simple(404, {"Content-Type": "text/plain"}, b"not found", head)
            if route.handler is not None:
                status, headers, body = route.handler(record)
                return self._simple(status, headers, body, head)
            if route.require_token is not None and \
                    self.headers.get("Authorization") != f"Bearer {route.require_token}":
                return self._simple(401, {"Content-Type": "text/plain"}, b"token required", head)
            if route.redirect is not None:
                return self._simple(route.redirect_status, {"Location": route.redirect}, b"", head)
            if route.fail_statuses:
                status = route.fail_statuses.pop(0)
                hdrs = {"Content-Type": "text/plain"}
                if route.retry_after is not None:
                    hdrs["Retry-After"] = route.retry_after
                return self._simple(status, hdrs, b"try again later", head)
            self._serve_body(route, path, head)
        except _Reset:
            pass
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _serve_body(self, route: Route, path: str, head: bool) -> None:
        size = route.size
        etag = route.etag or f'"{size:x}-{id(route):x}"'
        start, end = 0, size  # end exclusive
        status = 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and route.ranges and (if_range is None or if_range in (etag, route.last_modified)):
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                else:
                    start, end = max(0, size - int(m.group(2))), size
                if start >= size or start >= end:
                    return self._simple(416, {"Content-Range": f"bytes */{size}"}, b"", head)
                status = 206
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        if route.content_disposition:
            self.send_header("Content-Disposition", route.content_disposition)
        for k, v in route.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        self._send_range(route, path, start, end)

    def _send_range(self, route: Route, path: str, start: int, end: int) -> None:
        srv = self.fault_server
        reset_at = truncate_at = None
        with srv._lock:
            if route.reset_after is not None and route.reset_times > 0:
                route.reset_times -= 1
                reset_at = route.reset_after
            if route.truncate_at is not None and route.truncate_times > 0:
                route.truncate_times -= 1
                truncate_at = route.truncate_at
        rate = route.rate or srv.rate
        limit = end - start
        stop_at = min(x for x in (limit, reset_at, truncate_at) if x is not None)
        sock = self.connection
        if route.file is not None and rate is None and route.drip is None and stop_at == limit:
            with open(route.file, "rb") as f:  # the fast path: the kernel copies
                self.wfile.flush()
                offset, left = start, limit
                while left > 0:
                    n = os.sendfile(sock.fileno(), f.fileno(), offset, min(left, 1 << 30))
                    if n == 0:
                        break
                    offset += n
                    left -= n
                    srv._add_sent(path, n)
            return
        chunk = 256 * 1024
        if route.drip is not None:
            chunk = route.drip[0]
        elif rate is not None:
            chunk = max(4096, min(chunk, rate // 50))
        sent = 0
        t0 = time.monotonic()
        while sent < stop_at:
            n = min(chunk, stop_at - sent)
            data = route.read(start + sent, n)
            if not data:
                break
            self.wfile.write(data)
            sent += len(data)
            srv._add_sent(path, len(data))
            if route.drip is not None:
                time.sleep(route.drip[1])
            elif rate is not None:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        if reset_at is not None and sent >= reset_at and sent < limit:
            self._reset()
        if sent < limit:  # truncated: announced more than we send
            self.close_connection = True
