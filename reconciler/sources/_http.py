"""Small HTTP helpers shared by the resolvers (requests-based; no token ever in a message).

``sanitize_filename`` and ``filename_from_content_disposition`` are copies of the functions
in ``reconciler.download.http``: ``sources`` and ``download`` are sibling layers and may
not import each other.  Keep the two copies in step (or move both to a shared low module).
"""

from __future__ import annotations

from typing import Optional

import requests

from reconciler.errors import (
    AuthenticationRequiredError,
    SourceError,
    SourceNotFoundError,
    TransientError,
)
from reconciler.netnames import filename_from_content_disposition, redact_url, sanitize_filename

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "model-reconciler"

def auth_headers(token: Optional[str]) -> dict[str, str]:
    """``Authorization: Bearer`` when there is a token."""
    headers = {"User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def new_session() -> requests.Session:
    """A plain session for API calls (the download queue has its own, with retries)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def check_response(resp: requests.Response, what: str, had_token: bool) -> None:
    """Map an HTTP error status to the package's errors; ``what`` names the thing asked for."""
    status = resp.status_code
    if status < 400:
        return
    if status in (404, 410):
        raise SourceNotFoundError(f"{what} not found (HTTP {status})")
    if status in (401, 403):
        hint = "the token given was refused" if had_token else "it needs an access token"
        raise AuthenticationRequiredError(f"{what}: access denied (HTTP {status}): {hint}")
    if status == 429 or status >= 500:
        raise TransientError(f"{what}: server answered HTTP {status}; try again later")
    raise SourceError(f"{what}: server answered HTTP {status}")


def get_json(session: requests.Session, url: str, what: str, token: Optional[str],
             timeout: float = DEFAULT_TIMEOUT) -> object:
    """GET ``url`` and decode its JSON; errors mapped by :func:`check_response`."""
    try:
        resp = session.get(url, headers=auth_headers(token), timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"{what}: cannot reach {redact_url(url)}: {type(exc).__name__}") from None
    check_response(resp, what, had_token=bool(token))
    try:
        return resp.json()
    except ValueError:
        raise SourceError(f"{what}: the server answered malformed JSON ({redact_url(url)})") from None


__all__ = [
    "DEFAULT_TIMEOUT",
    "auth_headers",
    "check_response",
    "filename_from_content_disposition",
    "get_json",
    "new_session",
    "redact_url",
    "sanitize_filename",
]
