"""Names that come over the network, made safe: file names and URLs shown in messages.

Both the download queue and the source resolvers need these, so they live here, below
both layers, once.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_SECRET_KEY = re.compile(r"(token|key|sig|auth|pass|secret|cred|session|amz|goog|policy|expires)", re.I)


def redact_url(url: str) -> str:
    """The URL without user:password and with secret-looking query values replaced by ``***``."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparsable url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if ":" in (parts.hostname or ""):  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    query = ""
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if (_SECRET_KEY.search(k) or len(v) >= 32) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))



_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_CHARS = re.compile(r'[<>:"|?*]')


def sanitize_filename(name: str) -> str | None:
    """One safe path component from a remote name, or None when nothing usable is left.

    Drops directories (both separators), control characters and characters Windows
    refuses; refuses ``.``/``..``/empty; trims leading/trailing dots and spaces.
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").split("/")[-1]
    name = _CONTROL.sub("", name)
    name = _BAD_CHARS.sub("_", name).strip().strip(".").strip()
    if not name or name in (".", ".."):
        return None
    return name[:255]


def filename_from_content_disposition(value: str | None) -> str | None:
    """The (unsanitised) filename of a Content-Disposition header, RFC 6266 ``filename*`` first."""
    if not value:
        return None
    m = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", value, re.I)
    if m:
        charset = m.group(1) or "utf-8"
        try:
            return unquote(m.group(2).strip().strip('"'), encoding=charset, errors="strict")
        except (LookupError, UnicodeDecodeError):
            pass
    m = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', value, re.I)
    if m:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    m = re.search(r"filename\s*=\s*([^;]+)", value, re.I)
    if m:
        return m.group(1).strip()
    return None
