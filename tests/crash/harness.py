"""A rig that SIGKILLs `reconciler apply` at chosen moments and checks what the next apply makes of it.

:class:`CrashRig` builds one workspace: ten models (six local files and folders, a URL, a
Hugging Face single file, a Hugging Face diffusers repo and a Civitai version, the remote
ones served by a fake hub on 127.0.0.1 and throttled so that a kill can land
mid-download), two versions of one manifest declaring them (``v1``; ``v2`` replaces,
moves, prunes and adds, see :class:`CrashRig`), and a record store: SQLite
(``<models>/.reconciler/records.db``) or the YAML file store (``--db records.yaml`` in the
working directory).  :meth:`CrashRig.reference` applies a version once, uninterrupted, into
a models dir of its own (v2 over a copy of the installed v1), checks each model byte for
byte against its source, and times it.  :meth:`CrashRig.trial` starts ``reconciler apply
-y`` as a real subprocess (the console script) from the same starting point, SIGKILLs it
after a delay or at a named call (``killpoints/sitecustomize.py``), then runs a normal
``apply``, ``plan --detailed-exitcode`` and ``gc``, and returns every way the result
differs from the reference (:meth:`CrashRig.problems`).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.testing.models import (
    write_controlnet_diffusers,
    write_diffusers_pipeline,
    write_lora_kohya,
    write_main_checkpoint,
    write_textual_inversion,
    write_textual_inversion_folder,
    write_vae_checkpoint,
)
from tests.hub.fakehub import FakeHub
from tests.hub.repos import diffusers_repo_files

SET_NAME = "crash"
HF_FILE_REPO = "tiny/crash-lora"
HF_FILE = "big.safetensors"
HF_PIPE_REPO = "tiny/crash-sd"
CIVITAI_MODEL, CIVITAI_VERSION = 7301, 7302
URL_PATH = "/files/url-lora.safetensors"
KILLPOINTS = Path(__file__).with_name("killpoints")

#: bytes/s per connection for the remote files: a few MB each, so downloads take ~0.2-0.6 s
BIG_RATE = 8 * 2**20
#: the diffusers repo's files are small: pace them so that the repo takes ~0.3 s
SMALL_DRIP = (16 * 1024, 0.01)


def reconciler_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m reconciler.cli``."""
    script = Path(sys.executable).with_name("reconciler")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "reconciler.cli"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``, outside ``.reconciler``."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".reconciler" not in p.relative_to(root).parts}


@dataclass
class Run:
    """One finished command: argv, exit code, output, seconds."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv[-6:])}\n-> exit {self.returncode} in {self.seconds:.2f} s\n"
                f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}")


@dataclass
class Trial:
    """What one kill trial did and found."""

    index: int
    kill_at: float  # seconds (a timed kill) or inf (a kill point)
    killed: bool
    killed_run_seconds: float
    after_kill: dict[str, Any] = field(default_factory=dict)  # what the kill left: records, tmp/
    tmp_before_gc: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class CrashRig:
    """One workspace, one hub, ten models in two manifest versions; see the module docstring.

    ``v1`` declares the ten models.  ``v2`` changes five things, so that an apply of v2 over
    an installed v1 replaces, deletes and creates: ``lora-local`` gets another source file
    (same destination: the old file is set aside, the new one renamed in),
    ``embedding-local`` another source of another base (a new destination: the old file
    goes once the record points at the new one), ``lora-hf`` moves to another commit with
    other bytes, ``vae-local`` is no longer declared (pruned) and ``ti-folder-local`` is new.  ``only`` keeps a subset of the models (faster rigs for
    single kill points).
    """

    def __init__(self, root: Path, hub: FakeHub, store: str, only: set[str] | None = None) -> None:
        assert store in ("sqlite", "yaml")
        self.root = root
        self.hub = hub
        self.store = store
        self.only = only
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.hf_home = root / "hf-home"
        #: version -> model name -> {relpath in model: sha256}
        self.expected: dict[str, dict[str, dict[str, str]]] = {"v1": {}, "v2": {}}
        self.reference_tree: dict[str, dict[str, str]] = {}
        self.reference_records: dict[str, dict[str, dict[str, Any]]] = {}
        self.full_seconds: dict[str, float] = {}
        self.planned_seconds: dict[str, float] = {}  # when the reference apply printed its plan
        self._build_models()

    # --- setup -------------------------------------------------------------------------------
    @staticmethod
    def _digest_of(path: Path) -> dict[str, str]:
        if path.is_file():
            return {"": sha256_bytes(path.read_bytes())}
        return {p.relative_to(path).as_posix(): sha256_bytes(p.read_bytes())
                for p in sorted(path.rglob("*")) if p.is_file()}

    def _scratch_bytes(self, writer: Any, **kwargs: Any) -> bytes:
        tmp = self.root / "scratch.safetensors"
        data = writer(tmp, **kwargs).read_bytes()
        tmp.unlink()
        return data

    def _build_models(self) -> None:
        f = self.files
        local = {
            "lora-local": write_lora_kohya(f / "lora-local.safetensors", base="sd-1", rank=64),
            "vae-local": write_vae_checkpoint(f / "vae-local.safetensors", base="sd-1"),
            "embedding-local": write_textual_inversion(f / "embedding-local.safetensors", base="sd-1"),
            "main-local": write_main_checkpoint(f / "main-local.safetensors", base="sd-1"),
            "pipeline-local": write_diffusers_pipeline(f / "pipeline-local", base="sd-1"),
            "controlnet-local": write_controlnet_diffusers(f / "controlnet-local", base="sd-1"),
        }
        lora_v2 = write_lora_kohya(f / "lora-local-v2.safetensors", base="sd-1", rank=48)
        embedding_sd2 = write_textual_inversion(f / "embedding-local-sd2.safetensors", base="sd-2")
        ti_folder = write_textual_inversion_folder(f / "ti-folder-local", base="sd-1")

        url_bytes = self._scratch_bytes(write_lora_kohya, base="sd-1", rank=300)
        hf_v1 = self._scratch_bytes(write_lora_kohya, base="sd-1", rank=400)
        hf_v2 = self._scratch_bytes(write_lora_kohya, base="sd-1", rank=350)
        civ_bytes = self._scratch_bytes(write_lora_kohya, base="sdxl", rank=150)

        self.url_route = self.hub.server.add_file(URL_PATH, data=url_bytes, etag='"etag-url-lora"')
        self.hf_commits = (self.hub.add_repo(HF_FILE_REPO, {HF_FILE: hf_v1, "README.md": b"# crash lora\n"}),
                           self.hub.add_repo(HF_FILE_REPO, {HF_FILE: hf_v2, "README.md": b"# crash lora 2\n"}))
        self.pipe_files = diffusers_repo_files()  # which files install (fp16) is read from the reference
        self.hub.add_repo(HF_PIPE_REPO, self.pipe_files)
        self.hub.add_civitai_version(CIVITAI_VERSION, CIVITAI_MODEL,
                                     [{"name": "civ-lora.safetensors", "bytes": civ_bytes, "primary": True}],
                                     base_model="SDXL 1.0")

        v1: dict[str, str] = {name: f"source: ../../files/{path.name}" for name, path in local.items()}
        v1["lora-url"] = f"source: '{self.hub.url(URL_PATH)}', sha256: '{sha256_bytes(url_bytes)}'"
        v1["lora-hf"] = f"source: '{HF_FILE_REPO}::{HF_FILE}', revision: '{self.hf_commits[0]}'"
        v1["pipeline-hf"] = f"source: '{HF_PIPE_REPO}'"
        v1["lora-civitai"] = f"source: 'civitai:{CIVITAI_VERSION}'"
        exp1 = {name: self._digest_of(path) for name, path in local.items()}
        exp1.update({"lora-url": {"": sha256_bytes(url_bytes)}, "lora-hf": {"": sha256_bytes(hf_v1)},
                     "lora-civitai": {"": sha256_bytes(civ_bytes)}, "pipeline-hf": {}})

        v2 = dict(v1)
        v2["lora-local"] = f"source: ../../files/{lora_v2.name}"
        v2["embedding-local"] = f"source: ../../files/{embedding_sd2.name}"  # moves to sd-2/embedding/
        v2["lora-hf"] = f"source: '{HF_FILE_REPO}::{HF_FILE}', revision: '{self.hf_commits[1]}'"
        del v2["vae-local"]
        v2["ti-folder-local"] = f"source: ../../files/{ti_folder.name}"
        exp2 = {k: v for k, v in exp1.items() if k != "vae-local"}
        exp2.update({"lora-local": self._digest_of(lora_v2), "embedding-local": self._digest_of(embedding_sd2),
                     "lora-hf": {"": sha256_bytes(hf_v2)},
                     "ti-folder-local": self._digest_of(ti_folder)})

        for version, entries, expected in (("v1", v1, exp1), ("v2", v2, exp2)):
            keep = {k: v for k, v in entries.items() if self.only is None or k in self.only}
            body = "\n".join(f"    - {{name: {name}, {fields}}}" for name, fields in keep.items())
            folder = self.manifests(version)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "models.yaml").write_text(
                "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: " + SET_NAME + "}\n"
                "spec:\n  prune: true\n  models:\n" + body + "\n", encoding="utf-8")
            self.expected[version] = {k: v for k, v in expected.items() if k in keep}

    def manifests(self, version: str) -> Path:
        return self.root / "manifests" / version

    def throttle(self, on: bool) -> None:
        """Pace the remote files (so kills land mid-download), or serve them at full speed."""
        self.url_route.rate = BIG_RATE if on else None
        for commit in self.hf_commits:
            self.hub.file_route(HF_FILE_REPO, HF_FILE, revision=commit).rate = BIG_RATE if on else None
        self.hub.civitai_file_route(CIVITAI_VERSION).rate = BIG_RATE if on else None
        for path in self.pipe_files:
            route = self.hub.file_route(HF_PIPE_REPO, path)
            route.drip = SMALL_DRIP if on and path.endswith(".safetensors") else None

    # --- paths and commands -------------------------------------------------------------------
    def models_dir(self, tag: str) -> Path:
        return self.root / tag / "models"

    def db_path(self, tag: str) -> Path:
        if self.store == "yaml":
            return self.root / tag / "records.yaml"
        return self.models_dir(tag) / ".reconciler" / "records.db"

    def env(self, kill_at: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RECONCILER_", "CRASH_")) and k not in ("HF_TOKEN", "CIVITAI_API_TOKEN",
                                                                            "HF_HUB_OFFLINE")}
        env.update(HF_ENDPOINT=self.hub.endpoint, RECONCILER_CIVITAI_ENDPOINT=self.hub.civitai_endpoint,
                   HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HOME=str(self.hf_home), NO_COLOR="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        if kill_at:
            env["CRASH_KILL_AT"] = kill_at
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(KILLPOINTS), env.get("PYTHONPATH")) if p)
        return env

    def argv(self, tag: str, *args: str) -> list[str]:
        base = [*reconciler_command(), "--models-dir", str(self.models_dir(tag))]
        if self.store == "yaml":
            base += ["--db", self.db_path(tag).name]  # relative to the cwd, as a user types it
        return [*base, *args]

    def run(self, tag: str, *args: str, timeout: float = 120) -> Run:
        argv = self.argv(tag, *args)
        (self.root / tag).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = subprocess.run(argv, cwd=self.root / tag, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        return Run(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)

    def apply_args(self, version: str) -> list[str]:
        return ["apply", "-y", str(self.manifests(version))]

    def start_state(self, tag: str, version: str) -> None:
        """v1 starts from nothing; v2 from a copy of the installed v1 reference."""
        shutil.rmtree(self.root / tag, ignore_errors=True)
        if version == "v2":
            shutil.copytree(self.root / "reference-v1", self.root / tag, symlinks=True)

    # --- the references: uninterrupted applies ---------------------------------------------------
    def reference(self, version: str = "v1", throttle: bool = True) -> None:
        """Apply ``version`` once without a kill (v2 over a copy of the v1 reference): its time,
        tree and records, each model's bytes checked against its source."""
        if version == "v2" and "v1" not in self.reference_tree:
            self.reference("v1", throttle)
        tag = f"reference-{version}"
        self.start_state(tag, version)
        self.throttle(throttle)
        run, planned_at = self._timed_apply(tag, version)
        assert run.returncode == 0, run.describe()
        assert planned_at is not None, f"apply printed no plan summary:\n{run.describe()}"
        self.full_seconds[version] = run.seconds
        self.planned_seconds[version] = planned_at
        models = self.models_dir(tag)
        records = self.read_records(tag)
        expected = self.expected[version]
        assert sorted(records) == sorted(expected), sorted(records)
        if "pipeline-hf" in expected:  # what the diffusers repo installs (fp16) is in its file states
            expected["pipeline-hf"] = {f["path"]: sha256_bytes(self.pipe_files[f["path"]])
                                       for f in records["pipeline-hf"]["files"]}
        for name, want in expected.items():
            got = _model_digest(models / records[name]["path"])
            assert got == want, f"reference install of {name} differs from its source: {got} != {want}"
        self.reference_tree[version] = tree_digest(models)
        self.reference_records[version] = records
        assert self.problems(tag, version) == []

    def _timed_apply(self, tag: str, version: str) -> tuple[Run, float | None]:
        """Run apply with unbuffered output; also return when its plan was printed (the end
        of start-up and planning, the start of changes)."""
        argv = self.argv(tag, *self.apply_args(version))
        (self.root / tag).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.root / tag, env={**self.env(), "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        planned_at = None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if planned_at is None and line.startswith("Plan:"):
                planned_at = time.monotonic() - t0
        stderr = proc.stderr.read()
        proc.wait()
        return Run(argv, proc.returncode, "".join(lines), stderr, time.monotonic() - t0), planned_at

    def kill_time(self, rng: random.Random, version: str) -> float:
        """A random kill delay within a full apply's time: one in five during start-up and
        planning (the store is opened or created there), the rest while it changes things."""
        planned, full = self.planned_seconds[version], self.full_seconds[version]
        if rng.random() < 0.2:
            return rng.uniform(0.0, planned)
        return rng.uniform(planned, full)

    # --- reading state -------------------------------------------------------------------------
    def read_records(self, tag: str) -> dict[str, dict[str, Any]]:
        """name -> {record fields, files: [file states]} from the store."""
        from reconciler.store.base import ModelRecordServiceBase

        db = self.db_path(tag)
        if not db.exists():
            return {}
        store = ModelRecordServiceBase.from_db_file(db)
        try:
            files = store.all_files()
            out: dict[str, dict[str, Any]] = {}
            for rec in store.all_models():
                data = rec.model_dump(mode="json")
                data["files"] = [s.model_dump(mode="json") for s in files.get(rec.key, [])]
                assert rec.name not in out, f"two records named {rec.name}"
                out[rec.name] = data
            return out
        finally:
            store.close()

    def problems(self, tag: str, version: str) -> list[str]:
        """Every way the workspace ``tag`` differs from a converged install of ``version``."""
        out: list[str] = []
        models = self.models_dir(tag)
        records = self.read_records(tag)
        reference = self.reference_records[version]
        expected = self.expected[version]
        if sorted(records) != sorted(reference):
            out.append(f"records {sorted(records)} != declared {sorted(reference)}")
        for name, rec in records.items():
            ref = reference.get(name)
            if rec.get("managed_by") != SET_NAME:
                out.append(f"{name}: managed_by {rec.get('managed_by')!r}")
            path = models / rec["path"]
            if ".reconciler" in Path(rec["path"]).parts or rec["path"].endswith(".part"):
                out.append(f"{name}: record points into the state folder / at a partial file: {rec['path']}")
            if not path.exists():
                out.append(f"{name}: record points at missing {rec['path']}")
                continue
            if ref is not None:
                for fld in ("path", "type", "base", "format", "source", "source_revision", "inplace", "hash"):
                    if rec.get(fld) != ref.get(fld):
                        out.append(f"{name}: record {fld} {rec.get(fld)!r} != reference {ref.get(fld)!r}")
            states = rec["files"]
            if not states:
                out.append(f"{name}: record has no file states")
            for st in states:
                fpath = path / st["path"] if st["path"] else path
                if not fpath.is_file():
                    out.append(f"{name}: file state {st['path']!r} names a missing file")
                    continue
                if fpath.stat().st_size != st["size"]:
                    out.append(f"{name}: {st['path']!r} size {fpath.stat().st_size} != recorded {st['size']}")
                actual = sha256_bytes(fpath.read_bytes())
                if st.get("sha256") and st["sha256"] != actual:
                    out.append(f"{name}: {st['path']!r} recorded sha256 {st['sha256']} != on disk {actual}")
            got = _model_digest(path)
            if name in expected and got != expected[name]:
                diff = sorted(set(got.items()) ^ set(expected[name].items()))
                out.append(f"{name}: installed bytes differ from the source: {diff[:6]}")
            if sorted(s["path"] for s in states) != sorted(expected.get(name, {})):
                out.append(f"{name}: file states {sorted(s['path'] for s in states)} != files "
                           f"{sorted(expected.get(name, {}))}")
        tree = tree_digest(models)
        ref_tree = self.reference_tree[version]
        if tree != ref_tree:
            extra = sorted(set(tree) - set(ref_tree))
            missing = sorted(set(ref_tree) - set(tree))
            changed = sorted(p for p in set(tree) & set(ref_tree) if tree[p] != ref_tree[p])
            out.append(f"models dir differs from the reference: stray {extra[:8]}, missing {missing[:8]}, "
                       f"changed {changed[:8]}")
        out += self._stray_state_files(tag)
        return out

    def _stray_state_files(self, tag: str) -> list[str]:
        out = []
        left = self.tmp_listing(tag)
        if left:
            out.append(f"temporary files left under .reconciler/tmp: {left[:8]}")
        db = self.db_path(tag)
        temps = sorted(p.name for p in db.parent.glob(f".{db.name}.*")) if db.parent.exists() else []
        if temps:
            out.append(f"record store temp files left beside {db.name}: {temps}")
        return out

    def tmp_listing(self, tag: str) -> list[str]:
        tmp = self.models_dir(tag) / ".reconciler" / "tmp"
        return sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*")) if tmp.exists() else []

    # --- one trial -------------------------------------------------------------------------------
    def kill_apply(self, tag: str, version: str, kill_at: float, kill_point: str | None = None,
                   throttle: bool = True) -> tuple[bool, float]:
        """Start ``apply -y`` and SIGKILL it ``kill_at`` s later, or let ``kill_point`` (a
        CRASH_KILL_AT spec, see killpoints/sitecustomize.py) kill it; returns (killed, seconds)."""
        self.throttle(throttle)
        (self.root / tag).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        proc = subprocess.Popen(self.argv(tag, *self.apply_args(version)), cwd=self.root / tag,
                                env=self.env(kill_point), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        return proc.returncode == -signal.SIGKILL, time.monotonic() - t0

    def trial(self, index: int, version: str, kill_at: float, kill_point: str | None = None,
              throttle: bool = True) -> Trial:
        """Kill an apply of ``version`` (see :meth:`kill_apply`), then converge with a normal
        apply, ``plan --detailed-exitcode`` and ``gc``; collect every problem left."""
        tag = f"trial-{index}"
        self.start_state(tag, version)
        killed, seconds = self.kill_apply(tag, version, kill_at, kill_point, throttle)
        trial = Trial(index=index, kill_at=kill_at, killed=killed, killed_run_seconds=seconds)
        trial.after_kill = {"records": sorted(self.read_records(tag)), "tmp": self.tmp_listing(tag)}
        self.throttle(False)
        converge = self.run(tag, *self.apply_args(version))
        trial.runs.append(converge)
        if converge.returncode != 0:
            trial.problems.append("the apply after the kill failed")
        plan = self.run(tag, "plan", "--detailed-exitcode", str(self.manifests(version)))
        trial.runs.append(plan)
        if plan.returncode != 0:
            trial.problems.append(f"plan --detailed-exitcode after converging exited {plan.returncode}")
        trial.tmp_before_gc = self.tmp_listing(tag)
        gc = self.run(tag, "gc")
        trial.runs.append(gc)
        if gc.returncode != 0:
            trial.problems.append(f"gc exited {gc.returncode}")
        trial.problems += self.problems(tag, version)
        return trial

    def next_index(self) -> int:
        """A fresh trial number (its workspace is ``trial-<n>``)."""
        self._trials = getattr(self, "_trials", 0) + 1
        return self._trials

    def cleanup(self, index: int) -> None:
        shutil.rmtree(self.root / f"trial-{index}", ignore_errors=True)


def _model_digest(path: Path) -> dict[str, str]:
    """{relpath in the model: sha256} ("" for a single file)."""
    if path.is_file():
        return {"": sha256_bytes(path.read_bytes())}
    if not path.is_dir():
        return {}
    return {p.relative_to(path).as_posix(): sha256_bytes(p.read_bytes()) for p in sorted(path.rglob("*"))
            if p.is_file()}


def describe_trial(trial: Trial, what: str, reproduce: str) -> str:
    """A failure message: what was killed and how, how to replay it, the problems, the runs."""
    lines = [
        f"{what}: trial {trial.index} did not converge (killed={trial.killed} after "
        f"{trial.killed_run_seconds:.2f} s)",
        f"reproduce: {reproduce}",
        f"left by the kill: {trial.after_kill}",
        f"tmp before gc: {trial.tmp_before_gc}",
        *[f"  - {p}" for p in trial.problems],
    ]
    lines += [r.describe() for r in trial.runs]
    return "\n".join(lines)


__all__ = ["CrashRig", "Run", "Trial", "describe_trial", "reconciler_command", "tree_digest"]
