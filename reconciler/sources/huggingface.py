"""Resolve Hugging Face sources: revision -> commit sha, and the files a variant needs.

Talks to the hub through huggingface_hub's own ``HfApi`` (``model_info(files_metadata=True)``)
with the endpoint passed explicitly (``HF_ENDPOINT`` is read by huggingface_hub only at
import time), and builds download URLs with ``hf_hub_url(..., revision=<commit sha>)``
so that every machine fetches the same bytes.

File selection (:func:`select_files`), the way a diffusers user expects:

* ``::path/file`` (``source.file``): exactly that file, installed as a single file; the
  variant is ignored.
* A **diffusers repo** (``model_index.json`` at the root of the selection): the
  components model_index.json names (``unet``, ``vae``, ...); in each of their folders the
  requested variant's weights (``*.fp16.safetensors``, sharded ``*.fp16-00001-of-00002``
  and their ``*.index.fp16.json``), or the default weights where a folder has no file of
  that variant (with a note naming the folder); always the configs, tokenizer, scheduler
  and other non-weight files; never another variant's weights; safetensors over ``.bin``
  when both exist; ONNX (``.onnx``), OpenVINO (``openvino_model.*``) and Flax
  (``.msgpack``) weights only when that variant is asked for.  Top-level weights (a
  single-file checkpoint beside the pipeline, as in runwayml/stable-diffusion-v1-5) and
  folders model_index.json does not name are left out.
* ``:variant:subfolder``: the same rules inside that folder; ``dest`` paths are relative to it.
* **No model_index.json**: a folder with ``config.json`` at its root (a lone diffusers or
  transformers model, e.g. a VAE repo) is taken as a folder with the per-folder variant
  rules; otherwise, if the weights at the root come down to one file (after the variant
  and safetensors-over-bin choices), that file is the model (``single_file``); more than
  one candidate is an error that lists them and asks for ``::file``: the reconciler does
  not guess.
* No variant given: fp16 (the seed's default), so every machine resolves the same files.
  ``default`` means the un-suffixed weights; ``fp32`` takes ``*.fp32.*`` weights where
  they exist, else the un-suffixed ones (which are fp32 by convention), without a note.

Any listed path that is absolute or escapes its folder refuses the whole source
(:class:`UnsafePathError`), whether or not it would be selected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Optional
from urllib.parse import quote, unquote, urlsplit

import requests
from pydantic import ValidationError

from reconciler.errors import (
    AuthenticationRequiredError,
    ReconcilerError,
    SourceError,
    SourceNotFoundError,
    TransientError,
)
from reconciler.metadata import HuggingFaceMetadata, RemoteModelFile
from reconciler.sources._http import DEFAULT_TIMEOUT, get_json, new_session
from reconciler.sources.base import HFModelSource, is_weights_file
from reconciler.sources.metadata_fetch import ModelMetadataFetchBase
from reconciler.sources.resolved import RemoteFile, ResolvedSource, check_remote_path
from reconciler.taxonomy import ModelRepoVariant

DEFAULT_HF_ENDPOINT = "https://huggingface.co"

#: Variant used when a source names none and full precision is not asked for (the seed's
#: default; never guessed from hardware).
DEFAULT_VARIANT = ModelRepoVariant.FP16

_TORCH_WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")
# name.variant.ext, name.variant-00001-of-00002.ext, name.ext.index.variant.json
_VARIANT_WEIGHTS = re.compile(r"^[^.]+(?:\.[^.]+)*?\.(?P<v>[A-Za-z0-9_]+)(?:-\d+-of-\d+)?\.(?:safetensors|bin|ckpt|pt|pth)$")
_INDEX = re.compile(r"\.(?:safetensors|bin)\.index(?:\.(?P<v>[A-Za-z0-9_]+))?\.json$")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_VARIANT_NAMES = {"fp16", "fp32", "bf16", "non_ema", "ema", "fp8", "int8"}


@dataclass(frozen=True)
class Listed:
    """One file of a listing: path, size and LFS sha256 (None for plain git files); for a
    plain git file, its git blob id (the sha1 of ``blob <size>\\0<bytes>``)."""

    path: str
    size: Optional[int]
    sha256: Optional[str]
    git_blob: Optional[str] = None


# --- file classification -------------------------------------------------------------------


def _kind(name: str) -> str:
    """'torch', 'onnx', 'openvino', 'flax' for weights; 'other' for configs and the rest."""
    lower = name.lower()
    if lower.startswith("openvino_model.") or lower.endswith(".xml") and "openvino" in lower:
        return "openvino"
    if lower.endswith((".onnx", ".onnx_data", ".onnx.data")) or lower == "weights.pb":
        return "onnx"
    if lower.endswith(".msgpack"):
        return "flax"
    if lower.endswith(_TORCH_WEIGHTS):
        return "torch"
    return "other"


def file_variant(name: str) -> Optional[str]:
    """The repo variant a weights (or weights index) file belongs to; None = default weights.

    ``diffusion_pytorch_model.fp16.safetensors`` -> ``fp16``;
    ``model.fp16-00001-of-00002.safetensors`` -> ``fp16``;
    ``model.safetensors.index.fp16.json`` -> ``fp16``; ``model.safetensors`` -> None.
    Only known variant names count (``v1-5.pruned.safetensors`` is not a variant).
    """
    m = _INDEX.search(name)
    if m:
        v = m.group("v")
        return v.lower() if v and v.lower() in _VARIANT_NAMES else None
    m = _VARIANT_WEIGHTS.match(name)
    if m and m.group("v").lower() in _VARIANT_NAMES:
        return m.group("v").lower()
    return None


def _prefer_safetensors(names: list[str]) -> list[str]:
    if any(n.lower().endswith(".safetensors") for n in names):
        return [n for n in names if not n.lower().endswith((".bin", ".ckpt", ".pt", ".pth"))]
    return names


def _is_index_for(index: str, weights: Sequence[str]) -> bool:
    """True when the weights index ``index`` belongs to the chosen ``weights`` format."""
    ext = ".safetensors" if ".safetensors.index" in index else ".bin"
    return any(w.lower().endswith(ext) for w in weights)


def _select_folder(folder: str, names: list[str], variant: ModelRepoVariant, notes: list[str]) -> list[str]:
    """The files of one folder (names relative to it) for ``variant``; see the module docstring."""
    others = [n for n in names if _kind(n) == "other" and not _INDEX.search(n)]
    indexes = [n for n in names if _INDEX.search(n)]
    where = f"{folder}/" if folder else "the repo root"
    if variant in (ModelRepoVariant.ONNX, ModelRepoVariant.OpenVINO, ModelRepoVariant.Flax):
        kind = {ModelRepoVariant.ONNX: "onnx", ModelRepoVariant.OpenVINO: "openvino",
                ModelRepoVariant.Flax: "flax"}[variant]
        return sorted(others + [n for n in names if _kind(n) == kind])
    torch = [n for n in names if _kind(n) == "torch"]
    if not torch:
        return sorted(others)
    wanted = None if variant == ModelRepoVariant.Default else variant.value
    chosen = [n for n in torch if file_variant(n) == wanted]
    if not chosen and wanted is not None:
        chosen = [n for n in torch if file_variant(n) is None]
        if chosen and variant != ModelRepoVariant.FP32:
            notes.append(f"{where}: no {variant.value} weights; using its default weights")
    if not chosen:
        present = sorted({file_variant(n) or "default" for n in torch})
        fallback = present[0]
        chosen = [n for n in torch if (file_variant(n) or "default") == fallback]
        notes.append(f"{where}: no {variant.value} weights; using its {fallback} weights")
    chosen = _prefer_safetensors(chosen)
    chosen_variant = file_variant(chosen[0])
    index = [n for n in indexes if file_variant(n) == chosen_variant and _is_index_for(n, chosen)]
    return sorted(others + chosen + index)


def _group(paths: Iterable[str]) -> dict[str, list[str]]:
    folders: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        folder, _, name = p.rpartition("/")
        folders[folder].append(name)
    return folders


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def select_files(paths: Sequence[str], source: HFModelSource, variant: Optional[ModelRepoVariant] = None,
                 model_index: Optional[dict[str, Any]] = None) -> tuple[list[str], bool, list[str]]:
    """Choose files of a listing for ``source``: ``(repo paths, single_file, notes)``.

    ``paths`` is the repo listing; ``variant`` overrides ``source.variant`` (None: the
    source's, else :data:`DEFAULT_VARIANT`); ``model_index`` is the parsed
    ``model_index.json`` of the selection's root, when it has one (it names the components).
    Raises SourceNotFoundError when the file, subfolder or variant is not there and
    SourceError when a repo holds several single-file candidates.
    """
    repo = source.repo_id
    if source.file is not None:
        if source.file not in paths:
            raise SourceNotFoundError(f"Hugging Face repo {repo} has no file {source.file!r}")
        return [source.file], True, []
    variant = variant or source.variant or DEFAULT_VARIANT
    notes: list[str] = []
    prefix = f"{source.subfolder}/" if source.subfolder else ""
    rel = [p[len(prefix):] for p in paths if p.startswith(prefix)]
    if not rel:
        raise SourceNotFoundError(f"Hugging Face repo {repo} has no folder {source.subfolder!r}")
    folders = _group(rel)
    chosen: list[str] = []
    single = False
    if "model_index.json" in folders.get("", []):
        components = {k for k, v in (model_index or {}).items()
                      if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[0] and v[1]}
        chosen += [n for n in folders[""] if _kind(n) == "other" and n.lower().endswith((".json", ".txt"))]
        for folder, names in sorted(folders.items()):
            if folder and folder.split("/")[0] in components:
                chosen += [_join(folder, n) for n in _select_folder(prefix + folder, names, variant, notes)]
    elif "config.json" in folders.get("", []) or source.subfolder:
        for folder, names in sorted(folders.items()):
            shown = (prefix + folder).rstrip("/")
            chosen += [_join(folder, n) for n in _select_folder(shown, names, variant, notes)]
    else:
        root = folders.get("", [])
        root_notes: list[str] = []
        weights = [n for n in _select_folder("", root, variant, root_notes) if _kind(n) != "other"]
        if source.variant is not None:  # a lone file without the implicit fp16 is no news
            notes += root_notes
        if len(weights) == 1:
            chosen, single = weights, True
        elif not weights:
            candidates = [p for p in rel if is_weights_file(p)]
            raise SourceError(
                f"Hugging Face repo {repo} has no model_index.json, no config.json and no weights at its root; "
                f"name a subfolder (repo:variant:folder) or a file (repo::path) among: {', '.join(candidates[:10])}"
            )
        else:
            raise SourceError(
                f"Hugging Face repo {repo} holds several model files ({', '.join(sorted(weights)[:10])}); "
                f"name one with {repo}::<file>"
            )
    weights_chosen = [c for c in chosen if _kind(c.rpartition("/")[2]) != "other"]
    if variant in (ModelRepoVariant.ONNX, ModelRepoVariant.OpenVINO, ModelRepoVariant.Flax) and not weights_chosen:
        raise SourceNotFoundError(f"Hugging Face repo {repo} has no {variant.value} weights"
                                  + (f" in {source.subfolder!r}" if source.subfolder else ""))
    if not weights_chosen:
        raise SourceNotFoundError(f"Hugging Face repo {repo}: no model weights found"
                                  + (f" in {source.subfolder!r}" if source.subfolder else ""))
    return [prefix + c for c in chosen], single, notes


# --- resolving -------------------------------------------------------------------------------


def _hf_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    return GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError, HfHubHTTPError


def _status(exc: BaseException) -> Optional[int]:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _gated_error(repo: str, had_token: bool) -> AuthenticationRequiredError:
    if had_token:
        return AuthenticationRequiredError(
            f"Hugging Face repo {repo} is gated and the token given has no access to it "
            "(accept its terms on the hub with that token's account)"
        )
    return AuthenticationRequiredError(
        f"Hugging Face repo {repo} is gated: it needs an access token of an account that accepted its terms "
        "(set HF_TOKEN or run `hf auth login`)"
    )


def _map_hf_error(exc: BaseException, repo: str, revision: Optional[str], had_token: bool) -> ReconcilerError:
    gated, not_found, bad_rev, no_entry, http = _hf_errors()
    status = _status(exc)
    if isinstance(exc, gated):
        return _gated_error(repo, had_token)
    if isinstance(exc, bad_rev):
        return SourceNotFoundError(f"Hugging Face repo {repo} has no revision {revision!r}")
    if isinstance(exc, no_entry):
        return SourceNotFoundError(f"Hugging Face repo {repo}: file not found at revision {revision!r}")
    if isinstance(exc, not_found):
        if status == 401 and not had_token:
            return AuthenticationRequiredError(
                f"Hugging Face repo {repo} was not found, or it is private and needs an access token "
                "(set HF_TOKEN or run `hf auth login`)"
            )
        return SourceNotFoundError(f"Hugging Face repo {repo} not found")
    if isinstance(exc, http):
        if status in (401, 403):
            return AuthenticationRequiredError(f"Hugging Face repo {repo}: access denied (HTTP {status})")
        if status is not None and (status == 429 or status >= 500):
            return TransientError(f"Hugging Face repo {repo}: hub answered HTTP {status}; try again later")
        return SourceError(f"Hugging Face repo {repo}: hub answered HTTP {status}")
    return TransientError(f"Hugging Face repo {repo}: cannot reach the hub ({type(exc).__name__})")


def _listing(info: Any, repo: str) -> list[Listed]:
    siblings = getattr(info, "siblings", None)
    if siblings is None or not getattr(info, "sha", None):
        raise SourceError(f"Hugging Face repo {repo}: the hub's answer lacks a commit sha or a file listing")
    out = []
    for s in siblings:
        name = s.rfilename
        if not isinstance(name, str):
            raise SourceError(f"Hugging Face repo {repo}: the hub's listing holds a non-string file name")
        check_remote_path(name, f"Hugging Face repo {repo}")
        sha256 = s.lfs.sha256.lower() if s.lfs is not None and s.lfs.sha256 else None
        size = s.lfs.size if s.lfs is not None else s.size
        blob = getattr(s, "blob_id", None) if s.lfs is None else None  # an LFS file's is its pointer's
        out.append(Listed(name, size, sha256, blob.lower() if isinstance(blob, str) and _SHA1.fullmatch(blob) else None))
    return out


def _metadata(info: Any, listing: Sequence[Listed], endpoint: str) -> HuggingFaceMetadata:
    from huggingface_hub import hf_hub_url

    repo = info.id
    card = getattr(info, "card_data", None)
    tag_dict: dict[str, Any] = {}
    if card is not None:
        try:
            tag_dict = json.loads(json.dumps(card.to_dict() if hasattr(card, "to_dict") else dict(card), default=str))
        except (TypeError, ValueError):
            tag_dict = {}
    return HuggingFaceMetadata(
        name=repo.split("/")[-1],
        author=getattr(info, "author", None) or (repo.split("/")[0] if "/" in repo else ""),
        tags=set(getattr(info, "tags", None) or []),
        id=repo,
        tag_dict=tag_dict,
        last_modified=getattr(info, "last_modified", None),
        sha=info.sha,
        files=[RemoteModelFile(url=hf_hub_url(repo, f.path, revision=info.sha, endpoint=endpoint),
                               path=f.path, size=f.size, sha256=f.sha256) for f in listing],
    )


def _name_hint(source: HFModelSource) -> str:
    name = source.repo_id.split("/")[-1]
    if source.file:
        stem = PurePosixPath(source.file).name
        for ext in (".safetensors", ".ckpt", ".bin", ".pth", ".pt", ".onnx", ".gguf"):
            if stem.lower().endswith(ext):
                return stem[: -len(ext)]
        return stem
    if source.subfolder:
        return f"{name}-{source.subfolder.replace('/', '-')}"
    return name


def resolve_hf(source: HFModelSource, endpoint: Optional[str], token: Optional[str],
               revision: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
               default_variant: Optional[ModelRepoVariant] = None) -> ResolvedSource:
    """Resolve ``source`` on the hub at ``endpoint`` (None: huggingface.co) to a commit and files.

    ``default_variant`` is taken when the source names none (None: :data:`DEFAULT_VARIANT`;
    :func:`reconciler.sources.resolve.default_variant` picks fp32 for full precision).

    ``revision`` (a lock file's commit, a manifest's ``revision:``) overrides the source's;
    neither means the repo's default branch.  The token is ``source.access_token``, else
    ``token`` (the caller passes HF_TOKEN or ``huggingface_hub.get_token()``); with neither,
    no token is sent (huggingface_hub's implicit login is not consulted here, so a token
    never goes to an endpoint the caller did not choose it for).
    """
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    endpoint = (endpoint or DEFAULT_HF_ENDPOINT).rstrip("/")
    tok = source.access_token or token or None
    repo = source.repo_id
    rev = revision or source.revision
    api = HfApi(endpoint=endpoint, token=tok or False, library_name="model-reconciler")
    errors = _hf_errors()
    try:
        info = api.model_info(repo, revision=rev, files_metadata=True, timeout=timeout)
    except errors as exc:
        raise _map_hf_error(exc, repo, rev, bool(tok)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed JSON or shape
        raise SourceError(f"Hugging Face repo {repo}: the hub answered malformed JSON ({type(exc).__name__})") from None
    except OSError as exc:  # httpx transport errors derive from neither; connection refused does
        raise TransientError(f"Hugging Face repo {repo}: cannot reach {endpoint} ({type(exc).__name__})") from None
    except Exception as exc:
        if type(exc).__module__.startswith(("httpx", "httpcore")):
            raise TransientError(f"Hugging Face repo {repo}: cannot reach {endpoint} ({type(exc).__name__})") from None
        raise

    listing = _listing(info, repo)
    sha: str = info.sha
    by_path = {f.path: f for f in listing}
    model_index = None
    root = f"{source.subfolder}/model_index.json" if source.subfolder else "model_index.json"
    if source.file is None and root in by_path:
        model_index = _fetch_model_index(api, repo, root, sha, timeout)
    paths, single, notes = select_files([f.path for f in listing], source, source.variant or default_variant,
                                        model_index)
    prefix = f"{source.subfolder}/" if source.subfolder else ""
    files = []
    for path in paths:
        entry = by_path[path]
        dest = PurePosixPath(path).name if single else path[len(prefix):]
        files.append(RemoteFile(path=path, dest=dest, url=hf_hub_url(repo, path, revision=sha, endpoint=endpoint),
                                size=entry.size, sha256=entry.sha256, git_blob=entry.git_blob))

    gated = getattr(info, "gated", None)
    if gated:
        if not tok:
            raise _gated_error(repo, had_token=False)
        try:  # a token is there: check it opens the files now, not halfway through an apply
            get_hf_file_metadata(files[0].url, token=tok, timeout=timeout)
        except errors as exc:
            raise _map_hf_error(exc, repo, rev, True) from None
    return ResolvedSource(
        source=source,
        revision=sha,
        files=files,
        single_file=single,
        name_hint=_name_hint(source),
        notes=notes,
        metadata=_metadata(info, listing, endpoint),
        etag=None,
        api_response=_api_json(info),
    )


def _fetch_model_index(api: Any, repo: str, path: str, sha: str, timeout: float) -> dict[str, Any]:
    """Read model_index.json at ``sha`` (it names the pipeline's components)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(repo, path, revision=sha, endpoint=api.endpoint)
    errors = _hf_errors()
    try:
        resp = get_session().get(url, headers=build_hf_headers(token=api.token), timeout=timeout,
                                 follow_redirects=True)
        hf_raise_for_status(resp)
        data = resp.json()
    except errors as exc:
        raise _map_hf_error(exc, repo, sha, bool(api.token)) from None
    except ValueError:
        raise SourceError(f"Hugging Face repo {repo}: {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise SourceError(f"Hugging Face repo {repo}: {path} is not a JSON object")
    return data


def _api_json(info: Any) -> Optional[str]:
    """The hub's model-info answer as JSON text, from huggingface_hub's ``ModelInfo`` (which
    keeps every field the hub sent, nested entries as dataclasses; dates become ISO text)."""
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    try:
        data = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(vars(info))
        return json.dumps({k: v for k, v in data.items() if v is not None}, default=plain, ensure_ascii=False)
    except (TypeError, ValueError):  # an unexpected shape costs the copy, never the install
        return None


# --- metadata fetcher (requests-based, as the seed's fetchers are) --------------------------


class HuggingFaceMetadataFetch(ModelMetadataFetchBase):
    """Fetch :class:`HuggingFaceMetadata` through a ``requests.Session`` (the seed's API).

    ``endpoint``: None means ``HF_ENDPOINT`` from the environment (read when the fetcher is
    made), else huggingface.co; so the seed's ``HuggingFaceMetadataFetch()`` talks to the
    mirror huggingface_hub would use.
    ``files`` of the result hold the whole repo listing at the commit read, each usable as
    its repo-relative path (the seed's ``List[Path]``) and carrying its size and sha256.
    """

    def __init__(self, session: Optional[requests.Session] = None, endpoint: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session or new_session()
        self._endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")
        self._token = token
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"HuggingFaceMetadataFetch(endpoint={self._endpoint!r})"

    def from_id(self, id: str, revision: Optional[str] = None) -> HuggingFaceMetadata:
        """Metadata of repo ``id`` (``owner/name``) at ``revision`` (default branch when None)."""
        from huggingface_hub.hf_api import ModelInfo

        repo_id = id
        try:
            HFModelSource(repo_id=repo_id)  # validates the id
        except ValidationError as exc:
            raise SourceError(f"invalid Hugging Face repo id {repo_id!r}: "
                              f"{exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        url = f"{self._endpoint}/api/models/{repo_id}"
        if revision:
            url += f"/revision/{quote(revision, safe='')}"
        url += "?blobs=true"
        what = f"Hugging Face repo {repo_id}" + (f" at revision {revision!r}" if revision else "")
        data = get_json(self._session, url, what, self._token, self._timeout)
        try:
            info = ModelInfo(**data)  # type: ignore[arg-type]
        except (TypeError, KeyError, ValueError, AttributeError):
            raise SourceError(f"{what}: the hub answered an unexpected JSON document") from None
        return _metadata(info, _listing(info, repo_id), self._endpoint)

    def from_url(self, url: str) -> HuggingFaceMetadata:
        """Metadata from a pasted hub URL (``/owner/name``, ``.../tree/<rev>``, ``.../blob/<rev>/file``)."""
        parts = [unquote(p) for p in urlsplit(url).path.strip("/").split("/") if p]
        if len(parts) < 2:
            raise SourceError(f"not a Hugging Face model URL: {url!r}")
        repo_id = "/".join(parts[:2])
        revision = parts[3] if len(parts) >= 4 and parts[2] in ("tree", "blob", "resolve") else None
        return self.from_id(repo_id, revision)

    @classmethod
    def from_json(cls, json: str) -> HuggingFaceMetadata:
        """Validate the JSON of a :class:`HuggingFaceMetadata` (as stored)."""
        return HuggingFaceMetadata.model_validate_json(json)


__all__ = [
    "DEFAULT_HF_ENDPOINT",
    "DEFAULT_VARIANT",
    "HuggingFaceMetadataFetch",
    "file_variant",
    "resolve_hf",
    "select_files",
]
