"""Civitai model versions: metadata and the primary file to install.

The API is read with a ``requests.Session``: ``GET /api/v1/model-versions/<v>`` (files,
hashes, base model, trained words) and ``GET /api/v1/models/<id>`` (author, tags,
description, licence).  The file installs from ``<endpoint>/api/download/models/<v>``
(the version's primary file); its SHA256 from the API is what the download is verified
against.  A token (``CIVITAI_API_TOKEN`` or the source's) goes, as a Bearer header, only
to the configured endpoint: never into URLs, metadata, notes or messages.

A model source (``civitai:model/<id>``, from a pasted model-page URL without a version)
reads ``GET /api/v1/models/<id>`` first and takes the first of its ``modelVersions`` (Civitai
lists the newest first; its page shows that one by default); the plan notes the choice and
the lock file pins it.

Decisions: the model request (licence, author, tags) is best-effort: when it fails with
404 the version's metadata is still returned with default (most restrictive) licence
fields; any other failure is an error.  A version without files, or a primary file whose
name would land outside its folder, is refused.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

import requests
from pydantic import ValidationError

from reconciler.errors import SourceError, SourceNotFoundError, UnsafePathError
from reconciler.metadata import CivitaiMetadata, RemoteModelFile
from reconciler.sources._http import DEFAULT_TIMEOUT, get_json, new_session, sanitize_filename
from reconciler.sources.base import CivitaiModelSource
from reconciler.sources.metadata_fetch import ModelMetadataFetchBase
from reconciler.sources.parse import parse_source
from reconciler.sources.resolved import RemoteFile, ResolvedSource

DEFAULT_CIVITAI_ENDPOINT = "https://civitai.com"
CIVITAI_ENDPOINT_ENV = "RECONCILER_CIVITAI_ENDPOINT"


def _download_url(endpoint: str, version_id: int) -> str:
    return f"{endpoint}/api/download/models/{version_id}"


def _positive_id(value: int | str, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise SourceError(f"a Civitai {what} must be a positive integer, got {value!r}")
    return int(text)


def _check_name(name: Any, version_id: int) -> str:
    """A Civitai file name must be one plain path component (it becomes the installed file's name)."""
    if (not isinstance(name, str) or "/" in name or "\\" in name or name.strip() in ("", ".", "..")
            or not name.isprintable() or sanitize_filename(name) is None):
        raise UnsafePathError(
            f"Civitai model version {version_id} lists the file {name!r}, which is not a plain file name; "
            "the source is refused"
        )
    return name


class CivitaiMetadataFetch(ModelMetadataFetchBase):
    """Fetch :class:`CivitaiMetadata` of model versions (the seed's fetcher API).

    Civitai has two id spaces: a *model* (a family of versions) and a *version* (one set of
    files).  ``from_id``/``from_civitai_versionid`` take a version id;
    ``from_civitai_modelid`` takes a model id and returns its newest version (the one
    Civitai lists first, which its model page shows by default); ``from_url`` takes either
    kind of pasted URL.

    ``endpoint``: None means ``RECONCILER_CIVITAI_ENDPOINT`` from the environment (the
    setting ``civitai_endpoint``), else civitai.com.
    """

    def __init__(self, session: Optional[requests.Session] = None, endpoint: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session or new_session()
        self._endpoint = (endpoint or os.environ.get(CIVITAI_ENDPOINT_ENV) or DEFAULT_CIVITAI_ENDPOINT).rstrip("/")
        self._token = token
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"CivitaiMetadataFetch(endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        """The Civitai site root in use."""
        return self._endpoint

    def from_url(self, url: str) -> CivitaiMetadata:
        """Metadata of the version a pasted Civitai URL names.

        A model page with ``?modelVersionId=`` and a download URL name a version; a model page
        without it (``/models/215796``, ``/models/215796/some-name``) names the model, whose
        newest version is returned.
        """
        source = parse_source(url, civitai_hosts=[self._endpoint])
        if not isinstance(source, CivitaiModelSource):
            raise SourceError(f"not a Civitai model URL: {url.split('?')[0]!r}")
        if source.version_id is None:
            assert source.model_id is not None  # the source's validator
            return self.from_civitai_modelid(source.model_id)
        return self.from_civitai_versionid(source.version_id)

    def from_id(self, id: int | str) -> CivitaiMetadata:
        """Metadata of model *version* ``id`` (the same as :meth:`from_civitai_versionid`)."""
        return self.from_civitai_versionid(id)

    def from_civitai_versionid(self, version_id: int | str, model_id: Optional[int] = None) -> CivitaiMetadata:
        """Metadata of model version ``version_id``.

        ``model_id``, when given, must be the version's model (SourceError otherwise).
        """
        meta = self.fetch_version(version_id)[0]
        if model_id is not None and meta.id != int(model_id):
            raise SourceError(f"Civitai model version {meta.version_id} belongs to model {meta.id}, not {model_id}")
        return meta

    def from_civitai_modelid(self, model_id: int | str) -> CivitaiMetadata:
        """Metadata of the newest version of model ``model_id`` (see :meth:`newest_version`)."""
        return self.fetch_newest(model_id)[0]

    def newest_version(self, model_id: int | str) -> tuple[int, dict[str, Any]]:
        """The id of model ``model_id``'s newest version, and the model endpoint's JSON.

        The newest version is the first of the model's ``modelVersions``: Civitai lists them
        newest first, and its model page shows that one by default.
        """
        mid = _positive_id(model_id, "model id")
        what = f"Civitai model {mid}"
        model = get_json(self._session, f"{self._endpoint}/api/v1/models/{mid}", what, self._token, self._timeout)
        if not isinstance(model, dict):
            raise SourceError(f"{what}: the API answered an unexpected JSON document")
        versions = model.get("modelVersions")
        if not isinstance(versions, list):
            raise SourceError(f"{what}: the API's answer lists no model versions")
        for entry in versions:
            vid = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(vid, int) and not isinstance(vid, bool) and vid > 0:
                return vid, model
        raise SourceNotFoundError(f"{what} has no published version")

    def fetch_newest(self, model_id: int | str) -> tuple[CivitaiMetadata, str]:
        """Metadata of model ``model_id``'s newest version, and the version endpoint's JSON as text."""
        vid, model = self.newest_version(model_id)
        meta, text = self.fetch_version(vid, model=model)
        if meta.id != int(model_id):
            raise SourceError(f"Civitai model {model_id} lists version {vid}, which belongs to model {meta.id}")
        return meta, text

    def fetch_version(self, version_id: int | str,
                      model: Optional[dict[str, Any]] = None) -> tuple[CivitaiMetadata, str]:
        """Metadata of model version ``version_id``, and the version endpoint's JSON as text.

        ``model``: the model endpoint's JSON when the caller has it already (else it is fetched).
        """
        vid = _positive_id(version_id, "model-version id")
        what = f"Civitai model version {vid}"
        version = get_json(self._session, f"{self._endpoint}/api/v1/model-versions/{vid}", what, self._token,
                           self._timeout)
        if not isinstance(version, dict) or not isinstance(version.get("modelId"), int):
            raise SourceError(f"{what}: the API answered an unexpected JSON document")
        if model is None or model.get("id") != version["modelId"]:
            try:
                model = get_json(self._session, f"{self._endpoint}/api/v1/models/{version['modelId']}",
                                 f"Civitai model {version['modelId']}", self._token, self._timeout)
            except SourceNotFoundError:
                model = {}
        if not isinstance(model, dict):
            raise SourceError(f"Civitai model {version['modelId']}: the API answered an unexpected JSON document")
        return self._build(vid, version, model), json.dumps(version, ensure_ascii=False)

    @classmethod
    def from_json(cls, json: str) -> CivitaiMetadata:
        """Validate the JSON of a :class:`CivitaiMetadata` (as stored)."""
        return CivitaiMetadata.model_validate_json(json)

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
                    session: Optional[requests.Session] = None, timeout: float = DEFAULT_TIMEOUT,
                    revision: Optional[str] = None) -> ResolvedSource:
    """Resolve a Civitai model version to its primary file.

    ``revision`` is the version id; the file's sha256 (lower-case) comes from the API.
    A model source (``civitai:model/<id>``, no version) resolves to the model's newest
    version, with a note saying which, unless ``revision`` (a lock's version id) pins one.
    The token is the source's, else ``token`` (the caller passes ``CIVITAI_API_TOKEN``).
    """
    fetch = CivitaiMetadataFetch(session, endpoint, source.access_token or token, timeout)
    notes = []
    if source.version_id is not None:
        meta, api_response = fetch.fetch_version(source.version_id)
    elif revision:
        assert source.model_id is not None  # the source's validator
        meta, api_response = fetch.fetch_version(revision)
        if meta.id != source.model_id:
            raise SourceError(f"Civitai model version {meta.version_id} belongs to model {meta.id}, "
                              f"not to model {source.model_id}")
    else:
        assert source.model_id is not None  # the source's validator
        meta, api_response = fetch.fetch_newest(source.model_id)
        named = f" ({meta.version_name!r})" if meta.version_name else ""
        notes.append(f"Civitai model {source.model_id} names no version: its newest, {meta.version_id}{named}, "
                     "is used (`reconciler lock` pins it)")
    primary = meta.primary_file
    assert primary is not None  # _build refuses versions without files
    if primary.sha256 is None:
        notes.append(f"Civitai lists no SHA256 for {primary.path}; the download cannot be verified")
    return ResolvedSource(
        source=source,
        revision=str(meta.version_id),
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
