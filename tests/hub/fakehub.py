"""A fake Hugging Face Hub and Civitai API on 127.0.0.1, for tests and benches.

Built on :class:`tests.download.server.FaultServer` by composition: the hub answers its
dynamic paths through a mapping that stands in for the server's ``routes`` dict, and every
file is a FaultServer :class:`Route`, so Range requests, ETags and every fault switch
(``fail_statuses``, ``reset_after``, ``truncate_at``, ``rate``...) work on hub files too::

    with FakeHub() as hub:
        sha = hub.add_repo("acme/tiny", {"model_index.json": b"{}", "unet/x.safetensors": b"..."})
        hub.add_repo("acme/big", {"unet/x.safetensors": Path("/tmp/big.bin")})  # served from disk
        hub.add_folder("acme/pipe", path_to_a_diffusers_folder)      # a local folder as a repo
        hub.set_gated("acme/tiny", token="hf_secret")                 # 401/403 GatedRepo on files
        hub.set_private("acme/priv", token="hf_secret")               # 401 RepoNotFound everywhere
        hub.break_json("acme/tiny")                                   # API answers malformed JSON
        hub.add_raw_listing("evil/repo", ["../../x", "/etc/passwd"])  # a hostile listing
        hub.file_route("acme/tiny", "unet/x.safetensors").fail_statuses = [503]
        hub.add_civitai_version(62833, 58390, files=[{"name": "x.safetensors", "bytes": b"...",
                                                      "primary": True}])
        HfApi(endpoint=hub.endpoint).model_info("acme/tiny", files_metadata=True)
        hub.requests  # every request with its headers (Authorization included)

What it speaks (what huggingface_hub 2.4 asks, see /work/shared/NOTES.md):

* ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info with
  ``id``, ``sha``, ``lastModified``, ``author``, ``tags``, ``gated``, ``private``, ``cardData``
  and ``siblings[{rfilename, size, blobId, lfs{sha256, size, pointerSize}}]`` (blob data is
  always included; the ``?blobs=true`` query is not visible through FaultServer).
* ``GET /api/models/{repo}/tree/{rev}[/{folder}]``: the recursive tree (one page, no
  ``Link`` header), for ``snapshot_download``.
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the bytes with ``X-Repo-Commit``, ``ETag``
  (sha256 for LFS files, the git blob sha1 otherwise), ``X-Linked-Etag`` and
  ``X-Linked-Size`` for LFS files, Range support.
* Errors as the real hub sends them: 404 + ``X-Error-Code: RepoNotFound`` /
  ``RevisionNotFound`` / ``EntryNotFound``; a gated repo's *files* answer 401 (no token) or
  403 (a wrong token) with ``X-Error-Code: GatedRepo`` while its model info stays public
  (``"gated": "manual"``), as on huggingface.co; a private repo answers 401 RepoNotFound
  without a token and 404 RepoNotFound with a wrong one.
* Revisions: a branch name, or a full 40-hex commit sha.  Each :meth:`FakeHub.add_repo`
  call is a new commit holding exactly the given files; the branch moves to it, older
  commits stay reachable by sha.

Civitai lives under ``{endpoint}/civitai`` (:attr:`FakeHub.civitai_endpoint`) so that
other URLs on the same server do not parse as Civitai sources:
``/civitai/api/v1/model-versions/{v}``, ``/civitai/api/v1/models/{id}`` and
``/civitai/api/download/models/{v}``, which redirects to the file on a second server
(:attr:`FakeHub.cdn`, another port, so clients drop ``Authorization`` there as they do on
the real CDN; Content-Disposition names the file; Range works) or, when the version needs a token and the request has no
``Authorization: Bearer <token>``, to an HTML login page, as civitai.com does.  (Civitai's
``?token=`` query form is not checked: FaultServer does not keep queries.)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.download.server import FaultServer, RequestRecord, Route

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".gguf", ".h5", ".pb",
                ".xml")
"""Files stored in git LFS (as ``.gitattributes`` does on real repos); others are plain git blobs."""

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
_SHA = re.compile(r"[0-9a-f]{40}")
_current = threading.local()


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob holding ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _file_digests(path: Path) -> tuple[int, str, str]:
    """(size, sha256, git blob sha1) of a file, read once in blocks (for big bench files)."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    buf = bytearray(8 * 2**20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            sha256.update(view[:n])
            sha1.update(view[:n])
    return size, sha256.hexdigest(), sha1.hexdigest()


@dataclass
class HubFile:
    """One file of one commit: its bytes in memory, or (``data`` None) a file on disk."""

    path: str
    data: bytes | None
    sha256: str
    blob_id: str
    lfs: bool
    route: Route
    size: int = 0
    file: Path | None = None


@dataclass
class Commit:
    sha: str
    files: dict[str, HubFile]
    when: datetime
    raw_listing: list[dict[str, Any]] | None = None


@dataclass
class HubRepo:
    """A repository: commits by sha, branches, access rules and info fields."""

    repo_id: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    gated_token: str | None = None
    private_token: str | None = None
    broken_json: bool = False
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    card_data: dict[str, Any] = field(default_factory=dict)
    pipeline_tag: str | None = None
    library_name: str | None = None


@dataclass
class CivitaiVersion:
    version_id: int
    model_id: int
    info: dict[str, Any]
    files: list[dict[str, Any]]
    token: str | None
    routes: dict[str, Route]


class _Requests(list):  # type: ignore[type-arg]
    """The request log; remembers, per thread, the request being answered."""

    def append(self, record: RequestRecord) -> None:  # type: ignore[override]
        _current.record = record
        super().append(record)


class _HubRoutes(dict):  # type: ignore[type-arg]
    """FaultServer's routes: static routes first, then the hub's dynamic paths."""

    def __init__(self, hub: FakeHub, static: dict[str, Route]) -> None:
        super().__init__(static)
        self.hub = hub

    def get(self, path: str, default: Any = None) -> Any:  # type: ignore[override]
        route = super().get(path)
        if route is not None:
            return route
        record: RequestRecord | None = getattr(_current, "record", None)
        headers = record.headers if record is not None else {}
        return self.hub._dispatch(unquote(path), headers) or default


def _json_route(status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Route:
    payload = raw if raw is not None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return Route(handler=lambda _rec: (status, hdrs, payload))


def _error(status: int, code: str | None, message: str) -> Route:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _json_route(status, {"error": message}, headers)


def _bearer(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer "):]
    return None


class FakeHub:
    """The fake hub; see the module docstring.  Use as a context manager or call close()."""

    def __init__(self, server: FaultServer | None = None) -> None:
        self.server = server or FaultServer()
        self.server.routes = _HubRoutes(self, self.server.routes)
        self.server.requests = _Requests(self.server.requests)
        self.cdn = FaultServer()  # another port: clients drop Authorization on redirects to it
        for srv in (self.server, self.cdn):
            # TCP_NODELAY, as real hub and CDN servers do: the handler writes headers and body
            # separately, and with Nagle on, every response after the first on a kept-alive
            # connection waits ~40 ms for the client's delayed ACK before its body goes out
            srv._httpd.RequestHandlerClass.disable_nagle_algorithm = True
        self.repos: dict[str, HubRepo] = {}
        self.civitai: dict[int, CivitaiVersion] = {}
        self._commit_counter = 0
        self._lock = threading.Lock()

    # --- addresses ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The hub's root URL (pass as ``endpoint=`` / ``hf_endpoint``)."""
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def civitai_endpoint(self) -> str:
        """The fake Civitai site root (pass as ``civitai_endpoint``)."""
        return f"{self.endpoint}/civitai"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request seen, with its headers."""
        return self.server.requests

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return self.server.url(path)

    def resolve_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The ``/resolve/`` URL of a file, as huggingface_hub builds it."""
        return f"{self.endpoint}/{repo_id}/resolve/{revision}/{path}"

    def authorizations(self) -> list[tuple[str, str]]:
        """(path, Authorization header) of every request that carried one."""
        return [(r.path, v) for r in list(self.requests) for k, v in r.headers.items()
                if k.lower() == "authorization"]

    # --- Hugging Face repos --------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Mapping[str, bytes | Path], branch: str = "main", *,
                 author: str | None = None, tags: list[str] | None = None,
                 card_data: dict[str, Any] | None = None) -> str:
        """Commit ``files`` (the whole tree of the new commit) to ``branch``; return the commit sha.

        The first call creates the repo; later calls move ``branch`` to a new commit.  A
        value may be a :class:`~pathlib.Path` instead of bytes: that file is hashed once
        and served from disk (with sendfile), so a bench can serve GiBs without holding them.
        """
        with self._lock:
            repo = self.repos.setdefault(repo_id, HubRepo(repo_id=repo_id))
            if author is not None:
                repo.author = author
            if tags is not None:
                repo.tags = list(tags)
            if card_data is not None:
                repo.card_data = dict(card_data)
            self._commit_counter += 1
            parent = repo.branches.get(branch, "")
            digest = hashlib.sha1(f"{repo_id}\0{branch}\0{parent}\0{self._commit_counter}".encode())
            hashed = {path: self._digests(content) for path, content in files.items()}
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + bytes.fromhex(hashed[path][1]))
            sha = digest.hexdigest()
            commit = Commit(sha=sha, files={}, when=_EPOCH + timedelta(minutes=self._commit_counter))
            for path, content in files.items():
                commit.files[path] = self._hub_file(sha, path, content, hashed[path])
            repo.commits[sha] = commit
            repo.branches[branch] = sha
            return sha

    def add_folder(self, repo_id: str, folder: Path | str, branch: str = "main",
                   extra: dict[str, bytes] | None = None, **info: Any) -> str:
        """Commit every file under ``folder`` (plus ``extra``) as :meth:`add_repo` does."""
        root = Path(folder)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        files.update(extra or {})
        return self.add_repo(repo_id, files, branch, **info)

    def add_raw_listing(self, repo_id: str, paths: list[str], branch: str = "main") -> str:
        """A repo whose API listing names ``paths`` verbatim (``../../x``, ``/etc/passwd``...).

        The paths are served in ``siblings`` and the tree; none can be downloaded.
        """
        sha = self.add_repo(repo_id, {"README.md": b"# hostile\n"}, branch)
        listing = []
        for p in paths:
            data = b"x"
            listing.append({"rfilename": p, "size": 1, "blobId": git_blob_sha1(data),
                            "lfs": {"sha256": hashlib.sha256(data).hexdigest(), "size": 1, "pointerSize": 130}})
        self.repos[repo_id].commits[sha].raw_listing = listing
        return sha

    def set_gated(self, repo_id: str, token: str | None) -> None:
        """Gate the repo's files behind ``token`` (None: ungate); its info stays public."""
        self.repos[repo_id].gated_token = token

    def set_private(self, repo_id: str, token: str | None) -> None:
        """Make the whole repo visible only with ``token`` (None: public again)."""
        self.repos[repo_id].private_token = token

    def break_json(self, repo_id: str, broken: bool = True) -> None:
        """Make the repo's API answers (info, tree) malformed JSON."""
        self.repos[repo_id].broken_json = broken

    def move_branch(self, repo_id: str, branch: str, sha: str) -> None:
        """Point ``branch`` at an existing commit (a force-push / revert)."""
        repo = self.repos[repo_id]
        if sha not in repo.commits:
            raise KeyError(sha)
        repo.branches[branch] = sha

    def head(self, repo_id: str, branch: str = "main") -> str:
        """The commit sha ``branch`` points at."""
        return self.repos[repo_id].branches[branch]

    def file_route(self, repo_id: str, path: str, revision: str = "main") -> Route:
        """The FaultServer Route serving one file (set faults on it)."""
        repo = self.repos[repo_id]
        sha = repo.branches.get(revision, revision)
        return repo.commits[sha].files[path].route

    def file(self, repo_id: str, path: str, revision: str = "main") -> HubFile:
        """One file of a commit (bytes, sha256, blob id)."""
        repo = self.repos[repo_id]
        return repo.commits[repo.branches.get(revision, revision)].files[path]

    @staticmethod
    def _digests(content: bytes | Path) -> tuple[int, str, str]:
        """(size, sha256, git blob sha1) of in-memory bytes or a file on disk."""
        if isinstance(content, Path):
            return _file_digests(content)
        return len(content), hashlib.sha256(content).hexdigest(), git_blob_sha1(content)

    def _hub_file(self, sha: str, path: str, content: bytes | Path, digests: tuple[int, str, str]) -> HubFile:
        size, sha256, blob = digests
        lfs = path.lower().endswith(LFS_SUFFIXES) or size > 10 * 2**20
        headers = {"X-Repo-Commit": sha}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(size)})
        data = None if isinstance(content, Path) else content
        file = content if isinstance(content, Path) else None
        route = Route(data=data, file=file, etag=f'"{sha256 if lfs else blob}"', headers=headers,
                      content_type="application/octet-stream" if lfs else "text/plain; charset=utf-8")
        return HubFile(path=path, data=data, sha256=sha256, blob_id=blob, lfs=lfs, route=route, size=size,
                       file=file)

    # --- request dispatch ----------------------------------------------------------------------
    def _dispatch(self, path: str, headers: dict[str, str]) -> Route | None:
        if path.startswith("/civitai/"):
            return self._civitai(path[len("/civitai"):], headers)
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/"):], headers)
        if "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            revision, _, file_path = rest.partition("/")
            return self._resolve(repo_id, revision, file_path, headers)
        return None

    def _access(self, repo_id: str, headers: dict[str, str], files: bool) -> tuple[HubRepo | None, Route | None]:
        """The repo, or the error route a request for it gets."""
        repo = self.repos.get(repo_id)
        not_found = _error(404, "RepoNotFound", "Repository not found")
        if repo is None:
            return None, not_found
        token = _bearer(headers)
        if repo.private_token is not None and token != repo.private_token:
            return None, (_error(401, "RepoNotFound", "Invalid username or password.") if token is None else not_found)
        if files and repo.gated_token is not None and token != repo.gated_token:
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            return None, _error(401 if token is None else 403, "GatedRepo", message)
        return repo, None

    @staticmethod
    def _commit(repo: HubRepo, revision: str) -> Commit | None:
        sha = repo.branches.get(revision)
        if sha is None and _SHA.fullmatch(revision):
            sha = revision
        return repo.commits.get(sha) if sha else None

    def _api(self, rest: str, headers: dict[str, str]) -> Route | None:
        kind, marker = ("tree", "/tree/") if "/tree/" in rest else ("info", "/revision/")
        if marker in rest:
            repo_id, _, tail = rest.partition(marker)
            revision, _, sub = tail.partition("/")
        else:
            repo_id, revision, sub = rest.rstrip("/"), "main", ""
        repo, err = self._access(repo_id, headers, files=False)
        if repo is None:
            return err
        commit = self._commit(repo, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if repo.broken_json:
            return _json_route(200, None, raw=b'{"id": "' + repo_id.encode() + b'", "sha": "' + commit.sha[:7].encode())
        if kind == "info":
            return _json_route(200, self._info(repo, commit))
        return _json_route(200, self._tree(commit, sub.strip("/")))

    def _siblings(self, commit: Commit) -> list[dict[str, Any]]:
        if commit.raw_listing is not None:
            return commit.raw_listing
        out = []
        for f in sorted(commit.files.values(), key=lambda f: f.path):
            entry: dict[str, Any] = {"rfilename": f.path, "size": f.size, "blobId": f.blob_id}
            if f.lfs:
                entry["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            out.append(entry)
        return out

    def _info(self, repo: HubRepo, commit: Commit) -> dict[str, Any]:
        owner = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        paths = {f.path for f in commit.files.values()}
        library = repo.library_name or ("diffusers" if "model_index.json" in paths else None)
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.author or owner,
            "sha": commit.sha,
            "lastModified": _iso(commit.when),
            "createdAt": _iso(_EPOCH),
            "private": repo.private_token is not None,
            "gated": "manual" if repo.gated_token is not None else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(repo.tags) or ([library] if library else []),
            "pipeline_tag": repo.pipeline_tag,
            "library_name": library,
            "cardData": dict(repo.card_data),
            "siblings": self._siblings(commit),
            "spaces": [],
        }

    def _tree(self, commit: Commit, sub: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for s in self._siblings(commit):
            path = s["rfilename"]
            if sub and not path.startswith(sub + "/"):
                continue
            parts = path.split("/")
            for i in range(1, len(parts)):
                folders.add("/".join(parts[:i]))
            entry: dict[str, Any] = {"type": "file", "oid": s["blobId"], "size": s["size"], "path": path}
            if s.get("lfs"):
                entry["lfs"] = {"oid": s["lfs"]["sha256"], "size": s["lfs"]["size"],
                                "pointerSize": s["lfs"]["pointerSize"]}
            entries.append(entry)
        for folder in sorted(folders):
            if not sub or folder.startswith(sub + "/"):
                entries.append({"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                "size": 0, "path": folder})
        return sorted(entries, key=lambda e: e["path"])

    def _resolve(self, repo_id: str, revision: str, path: str, headers: dict[str, str]) -> Route:
        repo, err = self._access(repo_id, headers, files=True)
        if repo is None:
            assert err is not None
            return err
        commit = self._commit(repo, revision)
        if commit is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        f = commit.files.get(path)
        if f is None:
            return _error(404, "EntryNotFound", f"Entry not found: {path}")
        return f.route

    # --- Civitai -------------------------------------------------------------------------------
    def add_civitai_version(self, version_id: int, model_id: int, files: list[dict[str, Any]], *,
                            base_model: str = "SD 1.5", trained_words: list[str] | None = None,
                            nsfw: bool = False, model_name: str | None = None, version_name: str = "v1.0",
                            model_type: str = "LORA", creator: str = "civitai-user",
                            tags: list[str] | None = None, description: str = "<p>A model.</p>",
                            version_description: str = "<p>First version.</p>",
                            allow_no_credit: bool = True, allow_commercial_use: Any = ("Image", "Rent", "Sell"),
                            allow_derivatives: bool = True, allow_different_license: bool = True,
                            token: str | None = None, sha256_override: dict[str, str] | None = None) -> dict[str, Any]:
        """Serve one model version; ``files`` are ``{name, bytes, primary}`` dicts.

        ``token``: downloads need ``Authorization: Bearer <token>``, else the download URL
        redirects to an HTML login page.  ``sha256_override`` lists wrong hashes by file name
        (to test verification).  Returns the version JSON as served.
        """
        base = self.civitai_endpoint
        download = f"{base}/api/download/models/{version_id}"
        routes: dict[str, Route] = {}
        file_json = []
        for i, spec in enumerate(files):
            data: bytes = spec["bytes"]
            name: str = spec["name"]
            sha = (sha256_override or {}).get(name) or hashlib.sha256(data).hexdigest()
            routes[name] = Route(data=data, content_disposition=f'attachment; filename="{name}"',
                                 etag=f'"{hashlib.sha256(data).hexdigest()[:32]}"')
            file_json.append({
                "id": version_id * 10 + i,
                "name": name,
                "sizeKB": len(data) / 1024,
                "type": spec.get("type", "Model"),
                "metadata": {"format": "SafeTensor" if name.endswith(".safetensors") else "PickleTensor",
                             "size": "pruned", "fp": "fp16"},
                "hashes": {"AutoV2": sha[:10].upper(), "SHA256": sha.upper(), "CRC32": "DEADBEEF"},
                "primary": bool(spec.get("primary", False)),
                "downloadUrl": download if spec.get("primary") else f"{download}?type={spec.get('type', 'Model')}",
            })
        uses = [allow_commercial_use] if isinstance(allow_commercial_use, str) else list(allow_commercial_use)
        info = {
            "id": version_id,
            "modelId": model_id,
            "name": version_name,
            "createdAt": "2023-05-01T10:00:00.000Z",
            "updatedAt": "2023-05-02T10:00:00.000Z",
            "publishedAt": "2023-05-01T12:00:00.000Z",
            "trainedWords": list(trained_words or []),
            "baseModel": base_model,
            "description": version_description,
            "model": {"name": model_name or f"model {model_id}", "type": model_type, "nsfw": nsfw, "poi": False},
            "files": file_json,
            "images": [{"url": f"{base}/images/{version_id}.jpeg", "nsfwLevel": 1}],
            "downloadUrl": download,
        }
        model = {
            "id": model_id,
            "name": info["model"]["name"],
            "description": description,
            "type": model_type,
            "nsfw": nsfw,
            "tags": list(tags or ["lora"]),
            "creator": {"username": creator},
            "allowNoCredit": allow_no_credit,
            "allowCommercialUse": uses,
            "allowDerivatives": allow_derivatives,
            "allowDifferentLicense": allow_different_license,
        }
        for name, route in routes.items():
            self.cdn.routes[f"/files/{version_id}/{name}"] = route
        self.civitai[version_id] = CivitaiVersion(version_id, model_id, {"info": info, "model": model},
                                                  files, token, routes)
        return info

    def civitai_file_route(self, version_id: int, name: str | None = None) -> Route:
        """The Route serving a version's file (the primary by default)."""
        v = self.civitai[version_id]
        if name is None:
            name = next((f["name"] for f in v.files if f.get("primary")), v.files[0]["name"])
        return v.routes[name]

    def _civitai(self, path: str, headers: dict[str, str]) -> Route | None:
        if path == "/login":
            html = b"<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Sign in</body></html>"
            return Route(handler=lambda _r: (200, {"Content-Type": "text/html; charset=utf-8"}, html))
        m = re.fullmatch(r"/api/v1/model-versions/(\d+)/?", path)
        if m:
            v = self.civitai.get(int(m.group(1)))
            if v is None:
                return _json_route(404, {"error": f"No model version with id {m.group(1)}"})
            return _json_route(200, v.info["info"])
        m = re.fullmatch(r"/api/v1/models/(\d+)/?", path)
        if m:
            versions = [v for v in self.civitai.values() if v.model_id == int(m.group(1))]
            if not versions:
                return _json_route(404, {"error": f"No model with id {m.group(1)}"})
            body = dict(versions[0].info["model"])
            body["modelVersions"] = [{k: val for k, val in v.info["info"].items() if k != "model"}
                                     for v in sorted(versions, key=lambda v: -v.version_id)]
            return _json_route(200, body)
        m = re.fullmatch(r"/api/download/models/(\d+)/?", path)
        if m:
            v = self.civitai.get(int(m.group(1)))
            if v is None:
                return _json_route(404, {"error": "Model not found"})
            if v.token is not None and _bearer(headers) != v.token:
                return Route(redirect=f"{self.civitai_endpoint}/login?returnUrl=/api/download/models/{v.version_id}",
                             redirect_status=307)
            name = next((f["name"] for f in v.files if f.get("primary")), v.files[0]["name"])
            return Route(redirect=self.cdn.url(f"/files/{v.version_id}/{name}"), redirect_status=307)
        return None

    # --- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the servers."""
        self.server.close()
        self.cdn.close()

    def __enter__(self) -> FakeHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LFS_SUFFIXES", "CivitaiVersion", "Commit", "FakeHub", "HubFile", "HubRepo", "git_blob_sha1"]
