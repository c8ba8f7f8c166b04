"""HTTP plumbing for downloads: the session, token scoping, redirects, names, status mapping.

Why a module of its own: every byte-moving path (single stream, segments, multi-file parts)
opens responses the same way, so the rules about tokens live in exactly one place:

* the bearer token goes only to the scheme/host/port the job's URL names; redirects are
  followed here, hop by hop, and a hop to any other origin (a CDN, a login page, another
  port) is made without the header;
* a URL that is shown anywhere (events, logs, exception text, the resume sidecar) goes
  through :func:`redact_url` first, and exception text through :func:`scrub`.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from reconciler.errors import (
    AuthenticationRequiredError,
    DownloadError,
    RemoteFileNotFoundError,
    TransientDownloadError,
)
from reconciler.netnames import filename_from_content_disposition, redact_url, sanitize_filename

USER_AGENT = "model-reconciler/0.1 (+download queue)"
MAX_REDIRECTS = 10
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRIABLE_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})



def make_session(pool_maxsize: int = 64) -> requests.Session:
    """A requests Session sized for the queue's connections, with no urllib3 retries.

    urllib3's ``Retry`` is deliberately off (``max_retries=0``): a retry must resume from
    the byte where the connection dropped, which only :mod:`.retry` plus the segment state
    know; a transparent urllib3 retry would restart a GET from byte zero.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=max(1, pool_maxsize), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (a token, a raw URL with query) replaced by a redaction."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, redact_url(secret) if "://" in secret else "***")
    return text


class ScopedBearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` for one origin (scheme, host, port) only."""

    def __init__(self, token: str, origin_url: str) -> None:
        self._token = token
        self._origin = _origin(origin_url)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if r.url and _origin(r.url) == self._origin:
            r.headers["Authorization"] = f"Bearer {self._token}"
        else:
            r.headers.pop("Authorization", None)
        return r

    def __repr__(self) -> str:  # never show the token
        return f"ScopedBearerAuth(origin={self._origin!r})"


def open_stream(
    session: requests.Session,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    timeout: float = 30.0,
) -> requests.Response:
    """GET ``url`` as a stream, following redirects here so the token never leaves its origin.

    Returns the final response, status unchecked (see :func:`check_status`).  Network
    failures come back as :class:`TransientDownloadError` with a scrubbed message.
    """
    auth = ScopedBearerAuth(token, url) if token else None
    current = url
    hdrs = {"Accept-Encoding": "identity", **(headers or {})}
    for _ in range(MAX_REDIRECTS + 1):
        try:
            resp = session.get(
                current, headers=hdrs, auth=auth, stream=True, timeout=(timeout, timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise network_error(exc, url, token) from None
        if resp.status_code in REDIRECT_CODES and resp.headers.get("Location"):
            nxt = urljoin(current, resp.headers["Location"])
            resp.close()
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise DownloadError(f"{redact_url(url)}: redirect to an unsupported scheme")
            current = nxt
            continue
        return resp
    raise DownloadError(f"{redact_url(url)}: more than {MAX_REDIRECTS} redirects")


def network_error(exc: BaseException, url: str, token: str | None) -> TransientDownloadError:
    """A retriable error for a connection failure, reset or timeout; no secrets in its text."""
    detail = scrub(str(exc), [token, url])
    # requests puts the request path with its query in messages; drop query strings wholesale
    detail = re.sub(r"\?[^\s'\")]*", "?***", detail)
    return TransientDownloadError(f"{redact_url(url)}: {type(exc).__name__}: {detail}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def check_status(resp: requests.Response, url: str, token: str | None) -> None:
    """Raise the right error for a non-success status; return for 200/206.

    401/403 -> :class:`AuthenticationRequiredError`, 404/410 -> :class:`RemoteFileNotFoundError`,
    408/429/5xx -> :class:`TransientDownloadError` (with ``retry_after`` when the server
    sent one), other codes -> :class:`DownloadError`.  Each names the redacted URL once.
    """
    code = resp.status_code
    if code in (200, 206):
        return
    shown = redact_url(url)
    reason = resp.reason or ""
    resp.close()
    if code in (401, 403):
        hint = "the access token was refused" if token else "the source needs an access token"
        raise AuthenticationRequiredError(f"{shown}: HTTP {code} {reason}: {hint}")
    if code in (404, 410):
        raise RemoteFileNotFoundError(f"{shown}: HTTP {code} {reason}: no such file")
    if code in RETRIABLE_CODES:
        err = TransientDownloadError(f"{shown}: HTTP {code} {reason}")
        err.retry_after = parse_retry_after(resp.headers.get("Retry-After"))  # type: ignore[attr-defined]
        raise err
    raise DownloadError(f"{shown}: HTTP {code} {reason}")


def remote_filename(resp: requests.Response | None, url: str) -> str | None:
    """The sanitised name for a download: Content-Disposition, else the URL's last path part."""
    if resp is not None:
        name = filename_from_content_disposition(resp.headers.get("Content-Disposition"))
        if name:
            safe = sanitize_filename(name)
            if safe:
                return safe
    path = unquote(urlsplit(url).path)
    return sanitize_filename(path.rstrip("/").rsplit("/", 1)[-1]) if path.strip("/") else None


def looks_like_html(content_type: str | None, first_bytes: bytes) -> bool:
    """True for an HTML page (a login wall, an error page) where a model file was expected."""
    if content_type and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    head = first_bytes[:512].lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def html_error(url: str, token: str | None) -> AuthenticationRequiredError:
    """The error for an HTML page served instead of a model file."""
    hint = ("the access token was not accepted" if token
            else "the source probably needs an access token (e.g. a Civitai API token)")
    return AuthenticationRequiredError(
        f"{redact_url(url)}: the server sent an HTML page instead of a model file: {hint}"
    )


__all__ = [
    "ScopedBearerAuth",
    "check_status",
    "filename_from_content_disposition",
    "html_error",
    "looks_like_html",
    "make_session",
    "network_error",
    "open_stream",
    "parse_retry_after",
    "redact_url",
    "remote_filename",
    "sanitize_filename",
    "scrub",
]
