"""Resolve a plain URL source: its file name, size and ETag, without downloading it.

A ``HEAD`` request (redirects followed) tells name, size and ETag; a server that refuses
``HEAD`` (405/501, or 403 as some presigned-URL stores answer) is asked a ranged
``GET bytes=0-0`` instead.  The name comes from Content-Disposition; else from the URL asked
for when its last path part is a model file name (``x.safetensors``); else from the URL
after redirects (a mirror's short link); sanitised to one path component.  The
ETag is the revision (a changed ETag means new bytes).  An HTML page where a model file
was expected (a login page after a redirect) is an error, never a model.

The token (the source's, else the ``token`` argument) goes as a Bearer header; requests
drops it on redirects to another host.  Messages show URLs without their query strings.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urlsplit

import requests

from reconciler.errors import AuthenticationRequiredError, TransientError
from reconciler.sources._http import (
    DEFAULT_TIMEOUT,
    auth_headers,
    check_response,
    filename_from_content_disposition,
    new_session,
    redact_url,
    sanitize_filename,
)
from reconciler.sources.base import URLModelSource, is_weights_file
from reconciler.sources.resolved import RemoteFile, ResolvedSource

_CONTENT_RANGE_TOTAL = re.compile(r"bytes\s+\d+-\d+/(\d+)")


def _name_from_url(url: str) -> Optional[str]:
    return sanitize_filename(unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]))


def _probe(session: requests.Session, url: str, token: Optional[str], timeout: float) -> requests.Response:
    headers = auth_headers(token)
    what = f"URL {redact_url(url)}"
    try:
        resp = session.head(url, headers=headers, allow_redirects=True, timeout=timeout)
        if resp.status_code in (403, 405, 501):
            resp.close()
            resp = session.get(url, headers={**headers, "Range": "bytes=0-0"}, allow_redirects=True,
                               timeout=timeout, stream=True)
            resp.close()
    except requests.RequestException as exc:
        raise TransientError(f"{what}: cannot reach it ({type(exc).__name__})") from None
    check_response(resp, what, had_token=bool(token))
    return resp


def resolve_url(source: URLModelSource, session: Optional[requests.Session] = None, token: Optional[str] = None,
                timeout: float = DEFAULT_TIMEOUT) -> ResolvedSource:
    """Resolve ``source``: one file, named and sized from the server's headers."""
    session = session or new_session()
    tok = source.access_token or token or None
    resp = _probe(session, source.url, tok, timeout)
    what = f"URL {redact_url(source.url)}"
    ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        if resp.history:
            raise AuthenticationRequiredError(
                f"{what} redirected to an HTML page ({redact_url(resp.url)}), not a model file: "
                "a login page? it may need an access token"
            )
        raise AuthenticationRequiredError(
            f"{what} is an HTML page, not a model file: a login page? the source may need an access token"
        )
    size: Optional[int] = None
    total = _CONTENT_RANGE_TOTAL.match(resp.headers.get("Content-Range", ""))
    if total:
        size = int(total.group(1))
    elif resp.status_code == 200 and resp.headers.get("Content-Length", "").isdigit():
        size = int(resp.headers["Content-Length"])
    name = None
    disposition = filename_from_content_disposition(resp.headers.get("Content-Disposition"))
    if disposition:
        name = sanitize_filename(disposition)
    if not name:
        asked = _name_from_url(source.url)
        final = _name_from_url(resp.url)
        name = (asked if asked and is_weights_file(asked) else final or asked) or "download"
    etag = resp.headers.get("ETag") or None
    stem = re.sub(r"\.(safetensors|ckpt|pt|pth|bin|gguf|onnx)$", "", name, flags=re.I)
    return ResolvedSource(
        source=source,
        revision=etag,
        files=[RemoteFile(path=name, dest=name, url=source.url, size=size, sha256=None)],
        single_file=True,
        name_hint=stem or name,
        notes=[] if etag else [f"{what} sends no ETag: a change of its bytes cannot be detected"],
        metadata=None,
        etag=etag,
    )


__all__ = ["resolve_url"]
