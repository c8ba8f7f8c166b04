"""Civitai model versions: metadata and the primary file to install.

The API is read with a ``requests.Session``: ``GET /api/v1/model-versions/<v>`` (files,
hashes, base model, trained words) and ``GET /api/v1/models/<id>`` (author, tags,
description, licence).  The file installs from ``<endpoint>/api/download/models/<v>``
(the version's primary file); its SHA256 from the API is what the download is verified
against.  A token (``CIVITAI_API_TOKEN`` or the source's) goes, as a Bearer header, only
to the configured endpoint: never into URLs, metadata, notes or messages.

Decisions: the model request (licence, author, tags) is best-effort: when it fails with
404 the version's metadata is still returned with default (most restrictive) licence
fields; any other failure is an error.  A version without files, or a primary file whose
name would land outside its folder, is refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

import requests
from pydantic import ValidationError

from reconciler.errors import SourceError, SourceNotFoundError, UnsafePathError
from reconciler.metadata import CivitaiMetadata, RemoteModelFile
from reconciler.sources._http import DEFAULT_TIMEOUT, get_json, new_session, sanitize_filename
from reconciler.sources.base import CivitaiModelSource
from reconciler.sources.parse import parse_source
from reconciler.sources.resolved import RemoteFile, ResolvedSource

DEFAULT_CIVITAI_ENDPOINT = "https://civitai.com"


def _download_url(endpoint: str, version_id: int) -> str:
    return f"{endpoint}/api/download/models/{version_id}"


def _check_name(name: Any, version_id: int) -> str:
    """A Civitai file name must be one plain path component (it becomes the installed file's name)."""
    if (not isinstance(name, str) or "/" in name or "\\" in name or name.strip() in ("", ".", "..")
            or not name.isprintable() or sanitize_filename(name) is None):
        raise UnsafePathError(
            f"Civitai model version {version_id} lists the file {name!r}, which is not a plain file name; "
            "the source is refused"
        )
    return name


class CivitaiMetadataFetch:
    """Fetch :class:`CivitaiMetadata` of model versions (the seed's fetcher API)."""

    def __init__(self, session: Optional[requests.Session] = None, endpoint: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session or new_session()
        self._endpoint = (endpoint or DEFAULT_CIVITAI_ENDPOINT).rstrip("/")
        self._token = token
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"CivitaiMetadataFetch(endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The Civitai site root in use."""
        return self._endpoint

    def from_url(self, url: str) -> CivitaiMetadata:
        """Metadata of the version a pasted Civitai URL names (page ``?modelVersionId=`` or download URL)."""
        source = parse_source(url, civitai_hosts=[self._endpoint])
        if not isinstance(source, CivitaiModelSource):
            raise SourceError(f"not a Civitai model-version URL: {url.split('?')[0]!r}")
        return self.from_id(source.version_id)

    def from_id(self, version_id: int | str) -> CivitaiMetadata:
        """Metadata of model version ``version_id``."""
        return self.fetch_version(version_id)[0]

    def fetch_version(self, version_id: int | str) -> tuple[CivitaiMetadata, str]:
        """Metadata of model version ``version_id``, and the version endpoint's JSON as text."""
        vid = str(version_id).strip()
        if not vid.isdigit() or int(vid) <= 0:
            raise SourceError(f"a Civitai model-version id must be a positive integer, got {version_id!r}")
        what = f"Civitai model version {vid}"
        version = get_json(self._session, f"{self._endpoint}/api/v1/model-versions/{vid}", what, self._token,
                           self._timeout)
        if not isinstance(version, dict) or not isinstance(version.get("modelId"), int):
            raise SourceError(f"{what}: the API answered an unexpected JSON document")
        model: Any = {}
        try:
            model = get_json(self._session, f"{self._endpoint}/api/v1/models/{version['modelId']}",
                             f"Civitai model {version['modelId']}", self._token, self._timeout)
        except SourceNotFoundError:
            model = {}
        if not isinstance(model, dict):
            raise SourceError(f"Civitai model {version['modelId']}: the API answered an unexpected JSON document")
        return self._build(int(vid), version, model), json.dumps(version, ensure_ascii=False)

    @staticmethod
    def from_json(json_text: str) -> CivitaiMetadata:
        """Validate the JSON of a :class:`CivitaiMetadata` (as stored)."""
        return CivitaiMetadata.model_validate_json(json_text)

    def _build(self, version_id: int, version: dict[str, Any], model: dict[str, Any]) -> CivitaiMetadata:
        files = version.get("files") or []
        if not isinstance(files, list) or not files:
            raise SourceNotFoundError(f"Civitai model version {version_id} has no files")
        remote = []
        has_primary = any(isinstance(f, dict) and f.get("primary") for f in files)
        for i, f in enumerate(files):
            if not isinstance(f, dict):
                raise SourceError(f"Civitai model version {version_id}: malformed file entry")
            name = _check_name(f.get("name"), version_id)
            primary = bool(f.get("primary")) if has_primary else i == 0
            hashes = f.get("hashes") or {}
            size_kb = f.get("sizeKB")
            remote.append(RemoteModelFile(
                url=_download_url(self._endpoint, version_id) if primary else str(f.get("downloadUrl") or ""),
                path=name,
                size=round(float(size_kb) * 1024) if isinstance(size_kb, (int, float)) else None,
                sha256=(hashes.get("SHA256") or None) if isinstance(hashes, dict) else None,
                primary=primary,
            ))
        info = version.get("model") or {}
        creator = model.get("creator") or {}
        try:
            return CivitaiMetadata(
                name=str(model.get("name") or info.get("name") or f"civitai-{version_id}"),
                author=str(creator.get("username") or "") if isinstance(creator, dict) else "",
                tags=set(t if isinstance(t, str) else str(t.get("name", "")) for t in model.get("tags") or []),
                id=int(version["modelId"]),
                version_id=version_id,
                version_name=str(version.get("name") or ""),
                model_type=model.get("type") or info.get("type"),
                created=version.get("createdAt"),
                updated=version.get("updatedAt"),
                published=version.get("publishedAt"),
                description=model.get("description"),
                version_description=version.get("description"),
                nsfw=bool(model.get("nsfw", info.get("nsfw", False))),
                restrictions={
                    "AllowNoCredit": bool(model.get("allowNoCredit", False)),
                    "AllowCommercialUse": model.get("allowCommercialUse") or [],
                    "AllowDerivatives": bool(model.get("allowDerivatives", False)),
                    "AllowDifferentLicense": bool(model.get("allowDifferentLicense", False)),
                },
                trained_words=set(version.get("trainedWords") or []),
                download_url=_download_url(self._endpoint, version_id),
                base_model_trained_on=str(version.get("baseModel") or ""),
                thumbnail_url=next((img.get("url") for img in version.get("images") or []
                                    if isinstance(img, dict) and img.get("url")), None),
                files=remote,
            )
        except (ValidationError, TypeError, ValueError) as exc:
            raise SourceError(f"Civitai model version {version_id}: unexpected API data ({type(exc).__name__})") from None


def _stem(name: str) -> str:
    return re.sub(r"\.(safetensors|ckpt|pt|pth|bin|zip)$", "", name, flags=re.I)


def resolve_civitai(source: CivitaiModelSource, endpoint: Optional[str], token: Optional[str],
                    session: Optional[requests.Session] = None, timeout: float = DEFAULT_TIMEOUT) -> ResolvedSource:
    """Resolve a Civitai model version to its primary file.

    ``revision`` is the version id; the file's sha256 (lower-case) comes from the API.
    The token is the source's, else ``token`` (the caller passes ``CIVITAI_API_TOKEN``).
    """
    fetch = CivitaiMetadataFetch(session, endpoint, source.access_token or token, timeout)
    meta, api_response = fetch.fetch_version(source.version_id)
    primary = meta.primary_file
    assert primary is not None  # _build refuses versions without files
    notes = []
    if primary.sha256 is None:
        notes.append(f"Civitai lists no SHA256 for {primary.path}; the download cannot be verified")
    return ResolvedSource(
        source=source,
        revision=str(source.version_id),
        files=[RemoteFile(path=primary.path, dest=sanitize_filename(primary.path) or primary.path, url=primary.url,
                          size=primary.size,
                          sha256=primary.sha256)],
        single_file=True,
        name_hint=_stem(primary.path),
        notes=notes,
        metadata=meta,
        etag=None,
        api_response=api_response,
    )


__all__ = ["DEFAULT_CIVITAI_ENDPOINT", "CivitaiMetadataFetch", "resolve_civitai"]
