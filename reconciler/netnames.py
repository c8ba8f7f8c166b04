"""Names that come over the network, made safe: file names and URLs shown in messages.

Both the download queue and the source resolvers need these, so they live here, below
both layers, once.
"""

from __future__ import annotations

import logging
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


def has_secret(url: str) -> bool:
    """True when :func:`redact_url` would hide something: a user:password, or a query value
    that looks secret (a token, key or signature parameter, or any value of 32+ characters)."""
    try:
        parts = urlsplit(str(url))
        if parts.username or parts.password:
            return True
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return True
    return any(_SECRET_KEY.search(k) or len(v) >= 32 for k, v in pairs)


def shown_url(url: str) -> str:
    """``url`` as it may be shown or stored: verbatim when it holds no secret, else redacted
    (a presigned link, a pasted ``?token=`` link)."""
    return redact_url(url) if has_secret(url) else url



_QUERY_PAIR = re.compile(r"([?&])([^=&\s#\"'<>]+)=([^&\s#\"'<>]*)")


def redact_text(text: str) -> str:
    """``text`` with secret-looking query values of any URL or request line in it replaced
    by ``***`` (same rule as :func:`redact_url`)."""
    if "=" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        key, value = m.group(2), m.group(3)
        if _SECRET_KEY.search(key) or len(value) >= 32:
            return f"{m.group(1)}{key}=***"
        return m.group(0)

    return _QUERY_PAIR.sub(one, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secret query values in a record's message (urllib3's
    debug lines show every request's path with its query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's problem, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


#: third-party loggers that print request URLs (with their query strings)
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests", "httpx", "httpcore",
               "huggingface_hub")


def install_log_redaction() -> None:
    """Put a :class:`RedactingFilter` on the loggers that show request URLs (idempotent)."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


install_log_redaction()  # on import: every module that moves bytes or resolves sources imports this one


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
