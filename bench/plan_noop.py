"""No-op plan over 500, 1,000 and 2,000 declared local models that are already installed.

Target (issue 2): 2,000 models in under 1.5 s on a 2-core machine, growing linearly.
The baseline printed beside each figure is the 500-model run of the same process, scaled
linearly (t500 * N/500): a ratio near 1.0 means linear growth.

    .venv/bin/python bench/plan_noop.py [--sizes 500 1000 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from reconciler.reconcile import api
from reconciler.reconcile.manifest import load_manifests
from reconciler.reconcile.planner import PlanOptions
from reconciler.settings import load_settings
from reconciler.testing.models import write_lora_kohya


def build(root: Path, n: int) -> tuple[Path, object]:
    files = root / "files"
    files.mkdir(parents=True)
    template = files / "template.safetensors"
    write_lora_kohya(template, base="sd-1")
    lines = ["apiVersion: reconciler/v1", "kind: ModelSet", "metadata: {name: bench}", "spec:", "  models:"]
    for i in range(n):
        target = files / f"lora-{i:05d}.safetensors"
        data = bytearray(template.read_bytes())
        data[-1] = i % 251  # distinct bytes per file
        target.write_bytes(bytes(data))
        lines.append(f"    - {{name: lora-{i:05d}, source: ../files/{target.name}, tags: [bench]}}")
    manifests = root / "manifests"
    manifests.mkdir()
    (manifests / "bench.yaml").write_text("\n".join(lines) + "\n")
    settings = load_settings(models_dir=root / "models", environ={})
    result = api.apply([manifests], settings)
    assert result.ok, [a.result for a in result.failed][:3]
    return manifests, settings


def time_noop_plan(manifests: Path, settings: object, repeat: int) -> tuple[float, float]:
    """Best wall time of (load manifests + plan), and of the plan alone."""
    best_total = best_plan = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        manifest = load_manifests([manifests])
        t1 = time.perf_counter()
        plan = api.plan(settings=settings, manifest=manifest, options=PlanOptions())  # type: ignore[arg-type]
        t2 = time.perf_counter()
        assert not plan.has_changes, "bench models should be in sync"
        best_total = min(best_total, t2 - t0)
        best_plan = min(best_plan, t2 - t1)
    return best_total, best_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base_t: float | None = None
    base_n = args.sizes[0]
    print(f"{'models':>7} {'plan+load s':>12} {'plan only s':>12} {'linear from ' + str(base_n):>18} {'ratio':>6}")
    for n in args.sizes:
        root = Path(tempfile.mkdtemp(prefix=f"plan-noop-{n}-"))
        try:
            manifests, settings = build(root, n)
            total, plan_only = time_noop_plan(manifests, settings, args.repeat)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if base_t is None:
            base_t = total
        linear = base_t * n / base_n
        print(f"{n:>7} {total:>12.3f} {plan_only:>12.3f} {linear:>18.3f} {total / linear:>6.2f}")
    print("target: 2000 models in < 1.5 s (plan+load), ratio near 1.0 (linear)")


if __name__ == "__main__":
    main()
