"""Parse a source string (as written in a manifest or on the command line) into a ModelSource.

Accepted forms, tried in this order:

1. ``civitai:<version-id>`` (a positive integer), or ``civitai:model/<model-id>`` (a model's
   newest version, chosen when the source is resolved and pinned by the lock file).
2. ``hf://<repo>[@<revision>][:<variant>[:<subfolder-or-file>]]``; ``<repo>`` is ``owner/name``
   or a legacy single ``name``.
3. URLs: ``http(s)://`` (a Civitai page or download URL on civitai.com or a configured
   Civitai endpoint becomes a :class:`CivitaiModelSource`, any other a :class:`URLModelSource`);
   ``file://`` is a local path; any other scheme is an error.
4. Local paths: absolute (``/x``, Windows ``C:\\x`` or ``\\\\server\\share``), ``./x``, ``../x``,
   ``~/x``, ``.``/``..``, or any string naming something that exists relative to ``base_dir``
   (so a folder ``owner/name`` next to the manifest wins over the repo of that name).
5. Bare Hugging Face forms ``owner/name``, ``owner/name:fp16``, ``owner/name:fp16:vae``,
   ``owner/name::vae``, ``owner/name:fp16:path/model.safetensors``,
   ``owner/name::path/model.safetensors`` and ``owner/name@revision...``: any string with a
   ``:``, or with exactly one ``/`` whose last part is not a weights file name.  An illegal
   repo id here is an error (prefix a local path with ``./`` to mean the path).
6. Anything else (``model.safetensors``, ``a/b/c``, ``files/x.safetensors``) is a relative
   local path, resolved against ``base_dir``; whether it exists is the caller's check.

Decisions on ambiguous forms:

* The third ``:`` segment (and the manifest's ``subfolder`` key) names a *file* when its last
  path segment ends in a weights extension (:data:`WEIGHTS_EXTENSIONS`), otherwise a
  *subfolder*; ``owner/name::path/model.safetensors`` and ``owner/name::vae`` differ only so.
* An empty variant (``owner/name::vae``, ``owner/name:``) means "not given"; ``default`` is
  a variant of its own (the repo's non-variant weights), kept distinct from "not given".
* Variants are case-insensitive (``FP16`` = ``fp16``).
* ``@revision`` is supported after the repo id (it is cheap: ``@`` cannot occur in a repo id
  and ``:`` cannot occur in a git ref), and ``str()`` writes it back; a manifest may equally
  use its ``revision:`` key.
* Pasted Civitai download URLs keep a ``token=`` query parameter as the access token (never
  shown by ``str()``); other query parameters (``type=``, ``format=``) are dropped: the
  version's primary file is what installs.
* A Civitai model-page URL without ``?modelVersionId=`` (``/models/215796``, also with a slug
  ``/models/215796/some-name``) names the model: ``civitai:model/215796``.  Resolving it picks
  the model's newest version (the one Civitai lists first, its default), the plan says which,
  and ``reconciler lock`` pins that version, so every machine still gets the same bytes.
* Relative local paths become absolute (``os.path.normpath`` against ``base_dir``, default
  the working directory); symlinks are not resolved, ``~`` is expanded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import ValidationError

from reconciler.errors import SourceError
from reconciler.netnames import shown_url
from reconciler.sources.base import (
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    ModelSource,
    URLModelSource,
    is_weights_file,
    validate_repo_id,
    validate_repo_path,
)
from reconciler.taxonomy import ModelRepoVariant

DEFAULT_CIVITAI_HOSTS: tuple[str, ...] = ("civitai.com", "www.civitai.com")
"""Hosts whose http(s) URLs are read as Civitai model versions."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_WINDOWS_PATH = re.compile(r"(?:[A-Za-z]:[\\/]|\\\\)")
_LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
_VARIANTS = {v.value: v for v in ModelRepoVariant}
_CIVITAI_PAGE = re.compile(r"/models/(\d+)(?:/[^/]*)?/?")
_CIVITAI_DOWNLOAD = re.compile(r"/api/download/models/(\d+)/?")
_CIVITAI_API_VERSION = re.compile(r"/api/v1/model-versions/(\d+)/?")


def _fail(text: str, reason: str) -> SourceError:
    shown = shown_url(text) if "://" in text else text  # a pasted link may carry ?token=
    return SourceError(f"invalid source {shown!r}: {reason}")


def parse_source(
    text: str,
    base_dir: Path | str | None = None,
    civitai_hosts: Iterable[str] | None = None,
) -> ModelSource:
    """Parse ``text`` into a source; raise :class:`SourceError` when it cannot be parsed.

    ``base_dir`` anchors relative local paths (a manifest's folder; default the working
    directory).  ``civitai_hosts`` adds Civitai endpoints (``host[:port]`` or a site root URL
    such as ``http://127.0.0.1:8080/civitai``) to civitai.com.
    """
    if not isinstance(text, str):
        raise SourceError(f"a source must be a string, not {type(text).__name__}")
    raw = text
    text = text.strip()
    if not text:
        raise SourceError("source is empty")
    if not text.isprintable():
        raise _fail(raw, "contains control characters or line breaks")

    lowered = text.lower()
    if lowered.startswith("civitai:"):
        return _parse_civitai_id(text, text[len("civitai:") :])
    if lowered.startswith("hf://"):
        return _parse_hf(text, text[len("hf://") :], allow_single=True)

    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name in ("http", "https"):
            return _parse_http(text, civitai_hosts)
        if name == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):
                raise _fail(text, "file:// URLs must name a local path (file:///path)")
            return LocalModelSource(path=Path(os.path.normpath(unquote(parts.path))))
        raise _fail(text, f"unsupported URL scheme {name!r} (expected http, https, hf, civitai or file)")

    if _WINDOWS_PATH.match(text):
        return LocalModelSource(path=Path(text))
    base = os.fspath(base_dir) if base_dir is not None else os.getcwd()
    if text.startswith(_LOCAL_PREFIXES) or text in (".", ".."):
        return _local(text, base)
    if os.path.lexists(os.path.join(base, text)):
        return _local(text, base)

    if ":" in text or (text.count("/") == 1 and not is_weights_file(text)):
        return _parse_hf(text, text, allow_single=False)
    return _local(text, base)


#: The name the issues use; same function.
parse = parse_source


def _local(text: str, base: str) -> LocalModelSource:
    path = os.path.expanduser(text)
    return LocalModelSource(path=Path(os.path.normpath(os.path.join(os.path.abspath(base), path))))


def _parse_civitai_id(text: str, rest: str) -> CivitaiModelSource:
    rest = rest.strip()
    if rest.lower().startswith("model/"):
        digits = rest[len("model/"):].strip()
        if not digits.isascii() or not digits.isdigit() or int(digits) <= 0:
            raise _fail(text, f"a Civitai model id must be a positive integer, got {digits!r}")
        return CivitaiModelSource(model_id=int(digits))
    if not rest.isascii() or not rest.isdigit() or int(rest) <= 0:
        raise _fail(text, f"a Civitai model-version id must be a positive integer, got {rest!r}")
    return CivitaiModelSource(version_id=int(rest))


def _parse_hf(text: str, body: str, *, allow_single: bool) -> HFModelSource:
    parts = body.split(":")
    if len(parts) > 3:
        raise _fail(text, "too many ':' parts (expected repo[:variant[:subfolder-or-file]])")
    repo, _, revision = parts[0].partition("@")
    if not repo:
        raise _fail(text, "missing repo id")
    if not allow_single and "/" not in repo:
        raise _fail(
            text,
            f"{repo!r} is not an 'owner/name' repo id (write hf://{repo} for a repo without an owner, "
            f"./{text} for a local path)",
        )
    try:
        validate_repo_id(repo)
    except ValueError as exc:
        hint = "" if allow_single else " (prefix a local path with ./)"
        raise _fail(text, f"{exc}{hint}") from None
    if "@" in parts[0] and not revision:
        raise _fail(text, "empty revision after '@'")

    variant = None
    if len(parts) >= 2 and parts[1]:
        variant = _VARIANTS.get(parts[1].lower())
        if variant is None:
            raise _fail(text, f"unknown variant {parts[1]!r} (allowed: {', '.join(_VARIANTS)})")
    subfolder = file = None
    if len(parts) == 3 and parts[2]:
        try:
            path = validate_repo_path(parts[2], "subfolder or file")
        except ValueError as exc:
            raise _fail(text, str(exc)) from None
        if is_weights_file(path):
            file = path
        else:
            subfolder = path
    try:
        return HFModelSource(
            repo_id=repo, variant=variant, subfolder=subfolder, file=file, revision=revision or None
        )
    except ValidationError as exc:
        raise _fail(text, exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _host_key(host: str) -> tuple[str, str]:
    """(netloc, path prefix) of a configured Civitai host or endpoint URL, lowercased."""
    host = host.strip()
    if "://" in host:
        parts = urlsplit(host)
        return parts.netloc.lower(), parts.path.rstrip("/")
    return host.rstrip("/").lower(), ""


def _parse_http(text: str, civitai_hosts: Iterable[str] | None) -> ModelSource:
    parts = urlsplit(text)
    if not parts.hostname or any(c.isspace() for c in text):
        raise _fail(text, "not a valid http(s) URL")
    netloc = parts.netloc.lower().rpartition("@")[2]
    hosts = [_host_key(h) for h in DEFAULT_CIVITAI_HOSTS]
    hosts += [_host_key(h) for h in civitai_hosts or ()]
    for host, prefix in hosts:
        if netloc == host and (not prefix or parts.path == prefix or parts.path.startswith(prefix + "/")):
            return _parse_civitai_url(text, parts.path[len(prefix) :], parse_qs(parts.query))
    try:
        return URLModelSource(url=text)
    except ValidationError:
        raise _fail(text, "not a valid http(s) URL") from None


def _parse_civitai_url(text: str, path: str, query: dict[str, list[str]]) -> CivitaiModelSource:
    token = (query.get("token") or [None])[0]
    for pattern in (_CIVITAI_DOWNLOAD, _CIVITAI_API_VERSION):
        match = pattern.fullmatch(path)
        if match:
            return CivitaiModelSource(version_id=_positive(text, match.group(1)), access_token=token)
    match = _CIVITAI_PAGE.fullmatch(path)
    if match:
        versions = query.get("modelVersionId")
        if not versions:  # the model's page: its newest version, chosen (and locked) at resolve time
            model_id = _positive(text, match.group(1), "model id")
            return CivitaiModelSource(model_id=model_id, access_token=token)
        return CivitaiModelSource(version_id=_positive(text, versions[0].strip()), access_token=token)
    raise _fail(
        text,
        "not a Civitai model-version URL (expected /models/<id>, /models/<id>?modelVersionId=<v> "
        "or /api/download/models/<v>)",
    )


def _positive(text: str, digits: str, what: str = "model-version id") -> int:
    if not digits.isascii() or not digits.isdigit() or int(digits) <= 0:
        raise _fail(text, f"a Civitai {what} must be a positive integer, got {digits!r}")
    return int(digits)


__all__ = ["DEFAULT_CIVITAI_HOSTS", "parse", "parse_source"]
