"""URL sources: name, size and ETag from headers; HEAD refused; errors; tokens stay on their host."""
# ruff: noqa: F811  (pytest fixtures imported from tests.hub.conftest are redefined as arguments)

from __future__ import annotations

import pytest
import requests

from reconciler.errors import AuthenticationRequiredError, SourceNotFoundError, TransientError
from reconciler.settings import AppSettings
from reconciler.sources import URLModelSource, parse_source
from reconciler.sources.resolve import resolve_source
from reconciler.sources.url import resolve_url
from tests.download.server import RequestRecord
from tests.hub.conftest import hub  # noqa: F401 - fixture
from tests.hub.fakehub import FakeHub

DATA = bytes(range(256)) * 40
TOKEN = "url_sekrit_0123456789"


def resolve(url: str, token: str | None = None):  # type: ignore[no-untyped-def]
    source = parse_source(url)
    assert isinstance(source, URLModelSource)
    return resolve_url(source, requests.Session(), token)


def test_name_size_etag_from_headers(hub: FakeHub) -> None:
    hub.server.add_file("/dl/123", DATA, etag='"v1"', content_disposition='attachment; filename="My LoRA.safetensors"')
    r = resolve(hub.url("/dl/123"))
    assert r.single_file and r.revision == r.etag == '"v1"' and r.notes == []
    [f] = r.files
    assert (f.path, f.dest, f.size, f.sha256) == ("My LoRA.safetensors", "My LoRA.safetensors", len(DATA), None)
    assert f.url == hub.url("/dl/123") and r.name_hint == "My LoRA" and r.metadata is None
    assert [(q.method, q.path) for q in hub.requests] == [("HEAD", "/dl/123")]  # nothing downloaded


def test_name_from_path_and_hostile_disposition(hub: FakeHub) -> None:
    hub.server.add_file("/files/some%20model.ckpt", DATA)
    assert resolve(hub.url("/files/some%20model.ckpt?x=1")).files[0].dest == "some model.ckpt"
    hub.server.add_file("/evil", DATA, content_disposition='attachment; filename="../../etc/passwd"')
    assert resolve(hub.url("/evil")).files[0].dest == "passwd"  # one plain component, never a path
    hub.server.add_file("/", DATA, etag=None)
    r = resolve(hub.url("/"))
    assert r.files[0].dest == "download"


def test_head_refused_falls_back_to_ranged_get(hub: FakeHub) -> None:
    def no_head(rec: RequestRecord) -> tuple[int, dict[str, str], bytes]:
        if rec.method == "HEAD":
            return 405, {}, b""
        assert rec.range == "bytes=0-0"
        return 206, {"Content-Range": f"bytes 0-0/{len(DATA)}", "ETag": '"e"',
                     "Content-Disposition": 'attachment; filename="x.safetensors"'}, DATA[:1]

    hub.server.add_handler("/nohead", no_head)
    r = resolve(hub.url("/nohead"))
    assert (r.files[0].dest, r.files[0].size, r.etag) == ("x.safetensors", len(DATA), '"e"')


def test_no_etag_noted(hub: FakeHub) -> None:
    hub.server.add_handler("/plain", lambda rec: (200, {"Content-Type": "application/octet-stream"}, DATA))
    r = resolve(hub.url("/plain"))
    assert r.revision is None and r.files[0].size == len(DATA)
    assert r.notes and "no ETag" in r.notes[0]


def test_errors_and_redaction(hub: FakeHub) -> None:
    with pytest.raises(SourceNotFoundError, match="not found") as err:
        resolve(hub.url(f"/missing.safetensors?token={TOKEN}"))
    assert TOKEN not in str(err.value)
    hub.server.add_file("/auth", DATA, require_token="right")
    with pytest.raises(AuthenticationRequiredError, match="needs an access token"):
        resolve(hub.url("/auth"))
    with pytest.raises(AuthenticationRequiredError, match="token given was refused") as err:
        resolve(hub.url("/auth"), token=TOKEN)
    assert TOKEN not in str(err.value)
    assert resolve(hub.url("/auth"), token="right").files[0].size == len(DATA)
    route = hub.server.add_file("/busy", DATA)
    route.fail_statuses = [503]
    with pytest.raises(TransientError):
        resolve(hub.url("/busy"))
    hub.server.add_file("/page", b"<html></html>", content_type="text/html; charset=utf-8")
    with pytest.raises(AuthenticationRequiredError, match="HTML page.*access token"):
        resolve(hub.url("/page"))
    hub.server.add_redirect("/login-first", hub.url("/page"))
    with pytest.raises(AuthenticationRequiredError, match="login page"):
        resolve(hub.url("/login-first"))


def test_token_stays_on_its_host(hub: FakeHub) -> None:
    hub.cdn.add_file("/blob", DATA, etag='"cdn"')
    hub.server.add_redirect("/redirected.safetensors", hub.cdn.url("/blob"))
    source = URLModelSource(url=hub.url("/redirected.safetensors"), access_token=TOKEN)
    r = resolve_source(source, AppSettings())
    assert r.etag == '"cdn"' and r.files[0].url == hub.url("/redirected.safetensors")
    assert r.files[0].dest == "redirected.safetensors"  # a model file name in the URL asked for wins
    hub.server.add_redirect("/short/42", hub.cdn.url("/blob"))
    assert resolve(hub.url("/short/42")).files[0].dest == "blob"  # else the final URL's
    assert {v for _, v in hub.authorizations()} == {f"Bearer {TOKEN}"}
    assert all("authorization" not in {k.lower() for k in q.headers} for q in hub.cdn.requests)
    assert TOKEN not in repr(r) and TOKEN not in repr(r.source)
