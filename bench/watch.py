"""Watch-mode bench (issue 12): `reconciler watch` as a whole subprocess, as a user runs it.

    .venv/bin/python bench/watch.py                  # ~2 min
    .venv/bin/python bench/watch.py --saves 20 --models 2000 --idle 60

1. Latency: a watcher with the default debounce (0.5 s) on a one-model manifest; the manifest
   is saved 20 times (write a temporary file, rename it over, as editors do), each after the
   previous reconcile has ended.  Latency = the start of the reconcile the save causes (the
   ``reconcile #N starting ... t=EPOCH`` line of ``-v``) minus the time of the rename.
   Target: median < 1 s.
2. Idle CPU: a watcher over a models dir with N managed models (tiny LoRAs, hard links of
   one file registered ``inplace``, so setup is quick), left alone for 60 s after its first
   reconcile; CPU = utime + stime of the process (all threads) from /proc/<pid>/stat over
   that window.  Target: < 1% of one core.

Prints each figure beside its target and whether it is met; exit status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.testing.models import write_lora_kohya  # noqa: E402

RECONCILER = str(Path(sys.executable).with_name("reconciler"))
STARTING = re.compile(r"reconcile #(\d+) starting trigger=(\S+) t=([\d.]+)")
DONE = re.compile(r"reconcile #(\d+) trigger=\S+ result=(\S+)")


class Watch:
    def __init__(self, root: Path, manifests: Path, *args: str) -> None:
        self.log = root / "watch.log"
        self._out = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [RECONCILER, "-v", "--models-dir", str(root / "models"), "watch", str(manifests), "--interval", "3600",
             *args], cwd=root, stdout=self._out, stderr=subprocess.STDOUT)

    def wait_done(self, n: int, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in DONE.finditer(self.log.read_text(errors="replace")):
                if int(m.group(1)) == n:
                    return m.group(2)
            if self.proc.poll() is not None:
                raise SystemExit(f"watcher exited:\n{self.log.read_text()}")
            time.sleep(0.01)
        raise SystemExit(f"no reconcile #{n} in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def started_at(self, n: int) -> float:
        for m in STARTING.finditer(self.log.read_text(errors="replace")):
            if int(m.group(1)) == n:
                return float(m.group(3))
        raise SystemExit(f"no start line for #{n}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        self._out.close()
        return rc


def manifest_text(models: dict[str, str], inplace: bool = False) -> str:
    extra = ", inplace: true" if inplace else ""
    body = "".join(f"    - {{name: {n}, source: '{s}'{extra}}}\n" for n, s in models.items())
    return f"apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {{name: bench}}\nspec:\n  models:\n{body}"


def save(path: Path, text: str) -> float:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return time.time()


def latency(root: Path, saves: int) -> list[float]:
    lora = write_lora_kohya(root / "a.safetensors")
    (root / "manifests").mkdir()
    manifest = root / "manifests" / "bench.yaml"
    save(manifest, manifest_text({"a": str(lora)}))
    w = Watch(root, root / "manifests")
    try:
        w.wait_done(1, 60)
        out = []
        for i in range(saves):
            saved = save(manifest, manifest_text({"a": str(lora)}) + f"# save {i}\n")
            w.wait_done(i + 2, 30)
            out.append(w.started_at(i + 2) - saved)
    finally:
        w.stop()
    return out


def idle_cpu(root: Path, models: int, seconds: float) -> tuple[float, float, float]:
    files = root / "files"
    files.mkdir()
    one = write_lora_kohya(files / "m0.safetensors")
    names = {}
    for i in range(models):
        path = files / f"m{i}.safetensors"
        if i:
            os.link(one, path)
        names[f"m{i}"] = str(path)
    (root / "manifests").mkdir()
    save(root / "manifests" / "bench.yaml", manifest_text(names, inplace=True))
    w = Watch(root, root / "manifests")
    try:
        t0 = time.monotonic()
        result = w.wait_done(1, 900)
        first = time.monotonic() - t0
        if result != "success":
            raise SystemExit(f"first reconcile: {result}\n{w.log.read_text()[-3000:]}")
        time.sleep(1.0)  # let the first reconcile's aftermath settle
        cpu0, wall0 = w.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = w.cpu_seconds(), time.monotonic()
        extra = len(DONE.findall(w.log.read_text())) - 1
        if extra:
            print(f"  note: {extra} reconcile(s) ran while idle")
    finally:
        w.stop()
    return 100.0 * (cpu1 - cpu0) / (wall1 - wall0), first, cpu1 - cpu0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--saves", type=int, default=20)
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--idle", type=float, default=60.0)
    args = ap.parse_args()
    ok = True
    root = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    try:
        (root / "lat").mkdir()
        lat = latency(root / "lat", args.saves)
        med = statistics.median(lat)
        met = med < 1.0
        ok &= met
        print(f"save -> reconcile start, median of {len(lat)} saves (debounce 0.5 s): {med * 1000:.0f} ms "
              f"(min {min(lat) * 1000:.0f}, max {max(lat) * 1000:.0f}); target < 1000 ms: {'met' if met else 'MISSED'}")
        (root / "idle").mkdir()
        pct, first, cpu = idle_cpu(root / "idle", args.models, args.idle)
        met = pct < 1.0
        ok &= met
        print(f"idle watcher, {args.models} managed models, {args.idle:.0f} s: {pct:.3f}% of a core "
              f"({cpu:.2f} s CPU; first reconcile took {first:.1f} s); target < 1%: {'met' if met else 'MISSED'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
