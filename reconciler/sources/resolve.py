"""resolve_source: any remote source -> ResolvedSource, with endpoints and tokens from one place.

Tokens: a source's own ``access_token`` first; else Hugging Face's ``huggingface_hub.get_token()``
(``HF_TOKEN``, then the stored ``hf auth login`` token) and Civitai's ``CIVITAI_API_TOKEN``.
Endpoints come from :class:`AppSettings` (``hf_endpoint`` falls back to huggingface_hub's
``constants.ENDPOINT``, i.e. ``HF_ENDPOINT`` as read at its import).
"""

from __future__ import annotations

import os
from typing import Optional

import requests

from reconciler.errors import SourceError
from reconciler.settings import AppSettings
from reconciler.sources.base import (
    CivitaiModelSource,
    HFModelSource,
    LocalModelSource,
    ModelSource,
    URLModelSource,
)
from reconciler.sources.civitai import resolve_civitai
from reconciler.sources.huggingface import resolve_hf
from reconciler.sources.resolved import ResolvedSource, git_blob_id
from reconciler.sources.url import resolve_url
from reconciler.taxonomy import ModelRepoVariant

CIVITAI_TOKEN_ENV = "CIVITAI_API_TOKEN"


def default_variant(settings: AppSettings) -> ModelRepoVariant:
    """The repo variant for a Hugging Face source that names none: as the seed says, fp32
    when the user asked for full precision (``precision: float32``), fp16 otherwise."""
    return ModelRepoVariant.FP32 if settings.precision == "float32" else ModelRepoVariant.FP16


def hf_token() -> Optional[str]:
    """HF_TOKEN, else huggingface_hub's stored login; None when neither is set."""
    from huggingface_hub import get_token

    return get_token() or None


def hf_endpoint(settings: AppSettings) -> str:
    """The Hugging Face endpoint to use: the settings', else huggingface_hub's default."""
    if settings.hf_endpoint:
        return settings.hf_endpoint.rstrip("/")
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def resolve_source(source: ModelSource, settings: AppSettings, session: Optional[requests.Session] = None,
                   revision: Optional[str] = None) -> ResolvedSource:
    """Resolve a remote source; ``revision`` (a locked commit) overrides a Hugging Face source's,
    and picks the version of a Civitai model source (``civitai:model/<id>``, else its newest).

    Local sources are not resolved here (they need no network): SourceError.
    """
    timeout = settings.download_timeout
    if isinstance(source, HFModelSource):
        token = source.access_token or hf_token()
        return resolve_hf(source, hf_endpoint(settings), token, revision=revision, timeout=timeout,
                          default_variant=default_variant(settings))
    if isinstance(source, CivitaiModelSource):
        token = source.access_token or os.environ.get(CIVITAI_TOKEN_ENV) or None
        return resolve_civitai(source, settings.civitai_endpoint, token, session, timeout=timeout,
                               revision=revision)
    if isinstance(source, URLModelSource):
        return resolve_url(source, session, source.access_token, timeout=timeout)
    if isinstance(source, LocalModelSource):
        raise SourceError(f"local source {source} needs no resolving (resolve_source takes remote sources)")
    raise SourceError(f"unknown source type {type(source).__name__}")


__all__ = ["CIVITAI_TOKEN_ENV", "hf_endpoint", "hf_token", "resolve_source"]


def file_url(source: ModelSource, settings: AppSettings, path: str, revision: Optional[str]) -> str:
    """The download URL of one file of a resolved source (rebuilt from a lock file).

    URLs are not stored in the lock: the same lock then works against a mirror
    (``HF_ENDPOINT``) or another Civitai endpoint.
    """
    if isinstance(source, HFModelSource):
        from huggingface_hub import hf_hub_url

        return hf_hub_url(source.repo_id, path, revision=revision, endpoint=hf_endpoint(settings))
    if isinstance(source, CivitaiModelSource):
        version = source.version_id or revision  # a model source downloads the version the lock pins
        if version is None:
            raise SourceError(f"{source}: no version is pinned (run `reconciler lock`)")
        return f"{settings.civitai_endpoint.rstrip('/')}/api/download/models/{version}"
    if isinstance(source, URLModelSource):
        return source.url
    raise SourceError(f"{source}: a local source has no download URL")


#: files without a listed sha256 (git-stored configs, tokenizers) up to this size are hashed at lock time
HASH_AT_LOCK_MAX = 64 * 2**20


def complete_digests(resolved: ResolvedSource, settings: AppSettings,
                     session: Optional[requests.Session] = None) -> ResolvedSource:
    """Fill in the sha256 of small files the listing gives none for (Hugging Face keeps only
    LFS files' sha256), by fetching and hashing them, so a lock pins every byte.

    Files larger than :data:`HASH_AT_LOCK_MAX` without a sha256 keep None (their size and
    the pinned revision still pin them).
    """
    import hashlib
    from dataclasses import replace

    from reconciler.errors import IntegrityError, TransientError

    session = session or requests.Session()
    source = resolved.source
    token = getattr(source, "access_token", None)
    if token is None and isinstance(source, HFModelSource):
        token = hf_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = []
    for f in resolved.files:
        if f.sha256 is None and (f.size is None or f.size <= HASH_AT_LOCK_MAX):
            try:
                response = session.get(f.url, headers=headers, timeout=settings.download_timeout)
            except requests.RequestException as exc:
                raise TransientError(f"cannot fetch {f.path} of {source} to hash it: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise SourceError(f"cannot fetch {f.path} of {source} to hash it: HTTP {response.status_code}")
            body = response.content
            if f.git_blob and git_blob_id(body) != f.git_blob:  # never pin bytes the listing disowns
                raise IntegrityError(f"{f.path} of {source}: the bytes served are not the ones the listing names "
                                     f"(git blob {git_blob_id(body)}, listed {f.git_blob}); nothing locked")
            f = replace(f, sha256=hashlib.sha256(body).hexdigest(), size=len(body))
        files.append(f)
    return replace(resolved, files=files)
