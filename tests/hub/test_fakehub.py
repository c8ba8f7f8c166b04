"""The fake hub is faithful enough for huggingface_hub's own client (snapshots, faults, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from tests.hub.fakehub import FakeHub


def test_snapshot_download_and_errors(hub: FakeHub, sd_repo_files: dict[str, bytes], tmp_path: Path) -> None:
    sha = hub.add_repo("acme/sd", sd_repo_files)
    folder = Path(snapshot_download("acme/sd", revision="main", endpoint=hub.endpoint, cache_dir=tmp_path,
                                    token=False, allow_patterns=["vae/*", "model_index.json"]))
    assert folder.name == sha
    assert (folder / "vae" / "config.json").read_bytes() == sd_repo_files["vae/config.json"]
    api = HfApi(endpoint=hub.endpoint, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/sd", revision="nope")
    hub.set_gated("acme/sd", "tok")
    assert api.model_info("acme/sd").gated == "manual"  # the info stays public ...
    with pytest.raises(GatedRepoError):  # ... the files do not
        api.hf_hub_download("acme/sd", "model_index.json", cache_dir=tmp_path / "other")


def test_faults_on_hub_files(hub: FakeHub, sd_repo_files: dict[str, bytes]) -> None:
    hub.add_repo("acme/sd", sd_repo_files)
    route = hub.file_route("acme/sd", "vae/config.json")
    route.fail_statuses = [503]
    url = hub.resolve_url("acme/sd", "vae/config.json")
    assert requests.get(url, timeout=5).status_code == 503
    ok = requests.get(url, timeout=5)
    assert ok.status_code == 200 and ok.content == sd_repo_files["vae/config.json"]
    assert ok.headers["X-Repo-Commit"] == hub.head("acme/sd") and "X-Linked-Etag" not in ok.headers  # not LFS
