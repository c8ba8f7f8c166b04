"""Download-queue benchmarks, each figure printed beside its baseline from the same run.

    .venv/bin/python bench/download.py            # all six, several minutes, ~4 GiB of temp disk
    .venv/bin/python bench/download.py --only curl,rss,parallel,segments,kill,peers
    .venv/bin/python bench/download.py --only peers --rounds 5

Set-up for ``peers`` (bench only, never part of the core install); a peer that is not
installed is skipped and the bench says so:

    apt-get install -y aria2                                        # aria2c (Debian package)
    .venv/bin/pip install -c constraints.txt -e '.[bench]'          # hf-transfer==0.1.9
    # or: .venv/bin/pip install -c constraints.txt hf-transfer==0.1.9

Everything runs against tests/download/server.py's FaultServer on 127.0.0.1, started in
this process; the files are generated on the fly in a temp dir and removed afterwards.
Child processes (``--child``) are used where a figure is per-process (peak RSS, SIGKILL).

Comparisons with another program (``curl``, ``peers``) time every side the same way: the
whole process, started and waited for here (interpreter start-up and imports included for
ours and for hf_transfer), with its CPU seconds (user + sys, from ``os.wait4``); each side
is reported as the median of ``--rounds`` alternating rounds (the order rotates each round).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.download import DownloadQueueService  # noqa: E402
from tests.download.server import FaultServer  # noqa: E402

MiB = 2**20
GiB = 2**30


def make_file(path: Path, size: int, sparse: bool = False) -> str:
    """A file of ``size`` random (or zero, sparse) bytes; returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        if sparse:
            f.truncate(size)
            zero = bytes(64 * MiB)
            left = size
            while left:
                n = min(left, len(zero))
                h.update(zero[:n])
                left -= n
        else:
            block = os.urandom(64 * MiB)
            left = size
            i = 0
            while left:
                n = min(left, len(block))
                chunk = (i.to_bytes(8, "little") + block[8:])[:n]
                f.write(chunk)
                h.update(chunk)
                left -= n
                i += 1
    return h.hexdigest()


def make_lora(path: Path, size: int) -> str:
    """A valid ``size``-byte safetensors file of one U8 tensor of random bytes whose key name
    reads as a kohya LoRA (so apply's probe accepts it); returns its sha256."""
    key = "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"
    data_len = size
    for _ in range(4):  # the header's length depends on the digits of data_len: settle it
        raw = json.dumps({key: {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}},
                         separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        data_len = size - 8 - len(raw)
    header = len(raw).to_bytes(8, "little") + raw
    h = hashlib.sha256(header)
    block = os.urandom(64 * MiB)
    with open(path, "wb") as f:
        f.write(header)
        left, i = data_len, 0
        while left:
            chunk = (i.to_bytes(8, "little") + block[8:])[:left]
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            i += 1
    return h.hexdigest()


def download(url: str, destdir: Path, filename: str | None = None, **queue_args: object) -> tuple[float, object]:
    """One download through a fresh queue; returns (seconds, job)."""
    q = DownloadQueueService(quiet=True, **queue_args)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    job = q.create_download_job(url, destdir, filename=filename)
    q.wait_for_job(job)
    dt = time.perf_counter() - t0
    q.stop()
    if job.status.value != "completed":
        raise SystemExit(f"download failed: {job.error!r}")
    return dt, job


def child(argv: list[str]) -> None:
    """``--child URL DESTDIR FILENAME [connections]``: download and print a JSON line."""
    url, destdir, filename = argv[0], Path(argv[1]), argv[2]
    conns = int(argv[3]) if len(argv) > 3 else 8
    sha = argv[4] != "0" if len(argv) > 4 else True
    dt, job = download(url, destdir, filename, connections_per_file=conns, compute_sha256=sha)
    hwm = 0  # VmHWM is per address space: unlike ru_maxrss it excludes the parent's pre-exec fork
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    print(json.dumps({"seconds": dt, "sha256": job.actual_sha256,  # type: ignore[attr-defined]
                      "maxrss_kib": hwm or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)


def run_timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` as a whole process started and waited for here; returns (wall seconds, CPU
    seconds user + sys of that process and its children, its stdout). Fails on a non-zero exit."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{text[-3000:]}")
    return wall, ru.ru_utime + ru.ru_stime, text


def run_child(url: str, destdir: Path, filename: str, conns: int = 8, sha256: bool = True) -> tuple[dict, int]:
    """Run a child download; returns (its JSON plus ``wall``/``cpu`` of the whole process as
    timed here, its peak RSS in KiB)."""
    cmd = [sys.executable, __file__, "--child", url, str(destdir), filename, str(conns), "1" if sha256 else "0"]
    wall, cpu, out = run_timed(cmd)
    res = json.loads(out.strip().splitlines()[-1])
    res["wall"], res["cpu"] = wall, cpu
    return res, res["maxrss_kib"]


#: alternating rounds of each side (``--rounds``); loopback timings here vary by +-20% run to run
ROUNDS = 5


class Side:
    """One side of a comparison: its whole-process wall and CPU seconds, one per round."""

    def __init__(self, label: str) -> None:
        self.label, self.wall, self.cpu = label, [], []  # type: ignore[var-annotated]

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def med(self) -> float:
        return statistics.median(self.wall)

    def cpu_med(self) -> float:
        return statistics.median(self.cpu)

    def line(self, size: int) -> str:
        runs = ", ".join(f"{w:.2f}" for w in self.wall)
        return (f"  {self.label:<34} wall {self.med():6.2f} s {size / self.med() / MiB:7.0f} MiB/s   "
                f"CPU {self.cpu_med():5.2f} s = {self.cpu_med() / (size / GiB):5.2f} s/GiB   (walls: {runs})")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 * MiB):
            h.update(chunk)
    return h.hexdigest()


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def bench_curl(srv: FaultServer, work: Path) -> None:
    src = work / "one-gib.bin"
    digest = make_file(src, GiB)
    srv.add_file("/one-gib.bin", file=src)
    url = srv.url("/one-gib.bin")
    out = work / "out"
    out.mkdir()
    curl = shutil.which("curl")
    ours, c, cd = Side("ours (queue child, whole process)"), Side("curl -o"), Side("curl -o, then fsync")
    for _ in range(ROUNDS):
        os.sync()  # each run starts with no dirty pages from the one before
        if curl:
            wall, cpu, _ = run_timed([curl, "-s", "-o", str(out / "curl.bin"), url])
            t1 = time.perf_counter()
            fsync_path(out / "curl.bin")  # a second baseline: curl's file made as durable as ours is before its rename
            c.add(wall, cpu)
            cd.add(wall + time.perf_counter() - t1, cpu)
            (out / "curl.bin").unlink()
            os.sync()
        # ours runs in its own process, as curl does: in this process it would share the GIL
        # with the test server's threads, a handicap curl does not have
        res, _ = run_child(url, out, "ours.bin")
        assert res["sha256"] == digest
        ours.add(res["wall"], res["cpu"])
        (out / "ours.bin").unlink()
    print(f"[curl]     1 GiB, unthrottled loopback, whole processes, median of {ROUNDS} alternating rounds "
          f"(ours: up to 8 connections, adaptive; sha256 on; on disk before the rename)")
    print(ours.line(GiB))
    if curl:
        print(c.line(GiB))
        print(cd.line(GiB))
        r = c.med() / ours.med()
        print(f"  ours / curl -o throughput {r:.2f}x (target >= 0.9x) {met(r >= 0.9)}; "
              f"ours / (curl -o + fsync) {cd.med() / ours.med():.2f}x (plain curl leaves dirty pages)")
    else:
        print("  curl: not installed, skipped")
    res1, _ = run_child(url, out, "ours1.bin", conns=1)
    print(f"  ours, one connection (whole process)  wall {res1['wall']:6.2f} s {GiB / res1['wall'] / MiB:7.0f} MiB/s  "
          f"CPU {res1['cpu']:.2f} s")
    (out / "ours1.bin").unlink()
    res0, _ = run_child(url, out, "ours0.bin", sha256=False)
    print(f"  ours, sha256 off (whole process)      wall {res0['wall']:6.2f} s {GiB / res0['wall'] / MiB:7.0f} MiB/s  "
          f"CPU {res0['cpu']:.2f} s")
    (out / "ours0.bin").unlink()
    shutil.rmtree(out)
    src.unlink()


def _peer_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return env


def _reconciler_cmd() -> list[str]:
    cli = ROOT / ".venv" / "bin" / "reconciler"
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "reconciler.cli"]


#: targets of issue 15 for the ``peers`` bench
TARGET_PEERS = 1.0
TARGET_CPU_VS_ARIA2C = 1.5
PEER_RATE = 50 * MiB


def bench_peers(srv: FaultServer, work: Path) -> None:
    """1 GiB at 50 MiB/s per connection: ``reconciler apply`` of a one-URL manifest (sha256
    given, so verified; durable before its rename) against aria2c and hf_transfer."""
    src = work / "peer.safetensors"
    digest = make_lora(src, GiB)
    srv.add_file("/peer.safetensors", file=src, rate=PEER_RATE)
    url = srv.url("/peer.safetensors")
    env = _peer_env()
    aria2c = shutil.which("aria2c")
    try:
        import hf_transfer  # noqa: F401, PLC0415
        have_hft = True
    except ImportError:
        have_hft = False
    print(f"[peers]    1 GiB, server {PEER_RATE // MiB} MiB/s per connection, whole processes, median of {ROUNDS} "
          f"rounds (order rotates each round)")
    if not aria2c:
        print("  aria2c: not installed, skipped (apt-get install -y aria2)")
    if not have_hft:
        print("  hf_transfer: not installed, skipped (.venv/bin/pip install -c constraints.txt hf-transfer==0.1.9)")

    def ours() -> tuple[float, float]:
        ws = Path(tempfile.mkdtemp(prefix="apply-", dir=work))
        try:
            (ws / "manifests").mkdir()
            (ws / "manifests" / "m.yaml").write_text(
                "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: bench}\nspec:\n  models:\n"
                f"    - {{name: peer, source: '{url}', sha256: '{digest}', type: lora, base: sd-1}}\n")
            wall, cpu, _ = run_timed([*_reconciler_cmd(), "--models-dir", str(ws / "models"), "apply", "-y",
                                      str(ws / "manifests")], env=env, cwd=ws)
            got = [f for f in (ws / "models").rglob("*.safetensors") if f.is_file() and not f.is_symlink()]
            if sum(f.stat().st_size for f in got) != GiB:
                raise SystemExit(f"apply installed {[(str(f), f.stat().st_size) for f in got]}, expected 1 GiB")
            return wall, cpu
        finally:
            shutil.rmtree(ws, ignore_errors=True)

    def aria() -> tuple[float, float]:
        d = Path(tempfile.mkdtemp(prefix="aria2c-", dir=work))
        try:
            wall, cpu, _ = run_timed([aria2c or "aria2c", "--no-conf=true", "-q", "-x16", "-s16", "-k1M",
                                      "--file-allocation=none", "-d", str(d), "-o", "out.bin", url], env=env)
            check(d / "out.bin", "aria2c")
            return wall, cpu
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def hft() -> tuple[float, float]:
        d = Path(tempfile.mkdtemp(prefix="hft-", dir=work))
        try:
            code = ("import sys, hf_transfer; "
                    "hf_transfer.download(sys.argv[1], sys.argv[2], max_files=16, chunk_size=10 * 1024 * 1024)")
            wall, cpu, _ = run_timed([sys.executable, "-c", code, url, str(d / "out.bin")], env=env)
            check(d / "out.bin", "hf_transfer")
            return wall, cpu
        finally:
            shutil.rmtree(d, ignore_errors=True)

    verified: set[str] = set()

    def check(path: Path, who: str) -> None:
        if path.stat().st_size != GiB:
            raise SystemExit(f"{who} wrote {path.stat().st_size} bytes, expected 1 GiB")
        if who not in verified:  # once per peer; its clock has already stopped
            if sha256_of(path) != digest:
                raise SystemExit(f"{who} wrote different bytes")
            verified.add(who)

    sides: list[tuple[Side, object]] = [(Side("reconciler apply (sha256, durable)"), ours)]
    if aria2c:
        sides.append((Side("aria2c -x16 -s16 -k1M"), aria))
    if have_hft:
        sides.append((Side("hf_transfer 16 x 10 MiB chunks"), hft))
    for r in range(ROUNDS):
        k = r % len(sides)
        for side, fn in sides[k:] + sides[:k]:
            os.sync()  # no side pays for another's writeback
            side.add(*fn())  # type: ignore[operator]
    for side, _ in sides:
        print(side.line(GiB))
    us = sides[0][0]
    peers = [s for s, _ in sides[1:]]
    if peers:
        fastest = min(peers, key=Side.med)
        r = fastest.med() / us.med()  # throughput ratio = inverse wall-time ratio
        print(f"  ours / faster peer ({fastest.label.split()[0]}) throughput {r:.2f}x "
              f"(target >= {TARGET_PEERS}x) {met(r >= TARGET_PEERS)}")
        for s in peers:
            if s is not fastest:
                print(f"  ours / {s.label.split()[0]} throughput {s.med() / us.med():.2f}x")
    else:
        print("  no peer installed: throughput target not measured")
    if aria2c:
        a = next(s for s in peers if s.label.startswith("aria2c"))
        rc = us.cpu_med() / a.cpu_med()
        print(f"  CPU seconds per GiB: ours {us.cpu_med():.2f}, aria2c {a.cpu_med():.2f} -> {rc:.2f}x "
              f"(target <= {TARGET_CPU_VS_ARIA2C}x; we hash, it does not) {met(rc <= TARGET_CPU_VS_ARIA2C)}")
    else:
        print("  aria2c not installed: CPU target not measured")
    src.unlink()


def bench_rss(srv: FaultServer, work: Path) -> None:
    big, small = work / "two-gib.bin", work / "twenty-mib.bin"
    make_file(big, 2 * GiB, sparse=True)
    make_file(small, 20 * MiB)
    srv.add_file("/two-gib.bin", file=big)
    srv.add_file("/twenty-mib.bin", file=small)
    out = work / "rss"
    out.mkdir()
    _, rss_small = run_child(srv.url("/twenty-mib.bin"), out, "s.bin")
    _, rss_big = run_child(srv.url("/two-gib.bin"), out, "b.bin")
    print(f"[rss]      peak RSS, 2 GiB download: {rss_big / 1024:6.1f} MiB")
    print(f"           baseline 20 MiB download: {rss_small / 1024:6.1f} MiB  -> difference "
          f"{(rss_big - rss_small) / 1024:+.1f} MiB (target within 30 MiB)")
    shutil.rmtree(out)
    big.unlink()
    small.unlink()


def bench_parallel(srv: FaultServer, work: Path) -> None:
    files = []
    for i in range(16):
        p = work / f"p{i}.bin"
        make_file(p, 64 * MiB)
        srv.add_file(f"/p{i}.bin", file=p, rate=50 * MiB)
        files.append(p)
    out = work / "par"
    out.mkdir()
    total_single = 0.0
    for i in range(16):
        dt, _ = download(srv.url(f"/p{i}.bin"), out, f"s{i}.bin", connections_per_file=1)
        total_single += dt
        (out / f"s{i}.bin").unlink()
    for conns, label in ((1, "1 connection per file"), (8, "default 8 connections per file")):
        q = DownloadQueueService(max_parallel_dl=5, quiet=True, connections_per_file=conns)
        t0 = time.perf_counter()
        jobs = [q.create_download_job(srv.url(f"/p{i}.bin"), out, filename=f"q{i}.bin") for i in range(16)]
        q.join()
        wall = time.perf_counter() - t0
        q.stop()
        assert all(j.status.value == "completed" for j in jobs), [j.error for j in jobs]
        for i in range(16):
            (out / f"q{i}.bin").unlink()
        print(f"[parallel] 16 x 64 MiB, server 50 MiB/s per connection, max_parallel_dl=5, {label}: "
              f"{wall:6.2f} s")
        if conns == 1:
            print(f"           baseline: sum of 16 single downloads (1 connection): {total_single:6.2f} s  -> "
                  f"{total_single / wall:.2f}x faster (target >= 3.5x; 16 files in rounds of 5 caps it at 4x)")
        else:
            print(f"           -> {total_single / wall:.2f}x faster than the sum of single downloads")
    shutil.rmtree(out)
    for p in files:
        p.unlink()


def bench_segments(srv: FaultServer, work: Path) -> None:
    src = work / "seg.bin"
    digest = make_file(src, GiB)
    srv.add_file("/seg.bin", file=src, rate=50 * MiB)
    out = work / "seg"
    out.mkdir()
    dt8, job8 = download(srv.url("/seg.bin"), out, "a.bin", connections_per_file=8)
    dt1, job1 = download(srv.url("/seg.bin"), out, "b.bin", connections_per_file=1)
    assert job8.actual_sha256 == digest == job1.actual_sha256  # type: ignore[attr-defined]
    print(f"[segments] 1 GiB, server 50 MiB/s per connection: 8 segments {dt8:6.2f} s "
          f"({GiB / dt8 / MiB:.0f} MiB/s)")
    print(f"           baseline one stream:                      {dt1:6.2f} s ({GiB / dt1 / MiB:.0f} MiB/s)  -> "
          f"{dt1 / dt8:.2f}x faster (target >= 5x)")
    shutil.rmtree(out)
    src.unlink()


def bench_kill(srv: FaultServer, work: Path) -> None:
    src = work / "kill.bin"
    size = GiB
    digest = make_file(src, size)
    srv.add_file("/kill.bin", file=src, rate=50 * MiB)
    out = work / "kill"
    out.mkdir()
    url = srv.url("/kill.bin")
    srv.reset_counters()
    p = subprocess.Popen([sys.executable, __file__, "--child", url, str(out), "k.bin", "8"],
                         stdout=subprocess.DEVNULL)
    while srv.bytes_sent_for("/kill.bin") < 0.6 * size:
        time.sleep(0.005)
        if p.poll() is not None:
            raise SystemExit("child ended before 60%")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = srv.bytes_sent_for("/kill.bin")
    state = json.loads((out / "k.bin.part.json").read_text())
    kept = sum(s["pos"] - s["start"] for s in state["segments"])
    srv.reset_counters()
    res, _ = run_child(url, out, "k.bin")
    second = srv.bytes_sent_for("/kill.bin")
    assert res["sha256"] == digest, "resumed file differs"
    print(f"[kill]     1 GiB, SIGKILL after the server sent {first / size:.0%}; the sidecar had {kept / size:.1%}")
    print(f"           next process fetched {second} bytes = {second / size:.1%} of the file "
          f"(baseline without resume: 100%; target < 45%); sha256 verified")
    shutil.rmtree(out)
    src.unlink()


BENCHES = {"curl": bench_curl, "rss": bench_rss, "parallel": bench_parallel, "segments": bench_segments,
           "kill": bench_kill, "peers": bench_peers}


def main() -> None:
    global ROUNDS
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES))
    ap.add_argument("--rounds", type=int, default=ROUNDS,
                    help=f"alternating rounds of each side in curl and peers; the median is printed [{ROUNDS}]")
    args = ap.parse_args()
    ROUNDS = args.rounds
    work = Path(tempfile.mkdtemp(prefix="dl-bench-"))
    try:
        with FaultServer() as srv:
            print(f"server {srv.url('/')}, python {sys.version.split()[0]}, {os.cpu_count()} cpus")
            for name in args.only.split(","):
                t0 = time.perf_counter()
                BENCHES[name.strip()](srv, work)
                print(f"           ({name} took {time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
