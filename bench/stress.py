"""Run the stress suite on one kernel at several vCPU counts; print ops/s per test.

usage: .venv/bin/python bench/stress.py [--kernel BZIMAGE] [--vcpus 1,2,4]
           [--tests fork,stack,mmap,migrate,race] [--duration 10] [--repeats 1]
           [--out DIR]

Without --kernel, the baseline kernel is built (or taken from kpv's cache)
by `kpv run --revisions baseline` with the default job. Each (test, vCPUs)
is one boot, as in a kpv run: the same guest image, settings and verdicts
(pipeline.cell), so a number here is a number kpv reports. Writes
DIR/bench.json (every case's properties) and prints a table: the median
ops/s over the repeats, their spread, the per-kind rates and the verdict.
Under TCG the rates are TCG rates: compare them only with each other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import guest, job, packaged, vm  # noqa: E402
from pipeline.run import cell  # noqa: E402

DEFAULT_TESTS = ("fork", "stack", "mmap", "migrate", "race")


def baseline_kernel(out: Path) -> Path:
    """The default job's baseline bzImage, built (or reused from the cache) by kpv itself."""
    kdir = out / "kernel"
    cmd = [sys.executable, "-m", "pipeline", "run", "--revisions", "baseline", "--vcpus", "1",
           "--tests", "idle", "--duration", "1", "--out", str(kdir)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    kernel = kdir / "baseline" / "bzImage"
    if not kernel.is_file():
        sys.exit(f"building the baseline kernel failed:\n{done.stderr[-3000:]}")
    return kernel


def run(args: argparse.Namespace) -> dict:
    j = job.load(ROOT / "jobs" / "anon-vma.toml")
    tests_wanted = tuple(args.tests.split(","))
    vcpus = tuple(int(n) for n in args.vcpus.split(","))
    j = job.override(j, job.Overrides(tests=tests_wanted, duration=args.duration, vcpus=vcpus))
    if args.repeats < 1:
        sys.exit("--repeats: at least 1")
    kernel = Path(args.kernel) if args.kernel else baseline_kernel(args.out)
    settings = job.guest_settings(j)
    tests = [guest.stress_test(t, j.duration, j.seed, settings, args.repeats) for t in j.tests]
    bins = guest.build_stress(packaged.STRESS_SRC, args.out / "stress")
    initrd = guest.build_initramfs(tests, args.out / "initramfs.cpio", bins, settings=settings)
    accel, why = vm.probe_accel(j.accel)
    print(f"kernel {kernel}\naccelerator {accel}: {why}", file=sys.stderr)
    rows = []
    for n in vcpus:
        spec = cell.CellSpec("bench", n, kernel, initrd, j.memory_mb, j.numa_nodes, accel,
                             j.boot_timeout, j.test_slack)
        t0 = time.monotonic()
        suite = cell.run(spec, tests, args.out, f"vcpus-{n}",
                         lambda m: print(f"  {m}", file=sys.stderr))
        print(f"vcpus={n}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        for c in suite.cases:
            if c.name == "boot":
                continue
            rows.append({"test": c.name, "vcpus": n, "status": str(c.status),
                         "message": c.message, "properties": c.properties})
    return {"kernel": str(kernel), "accel": accel, "duration": j.duration,
            "repeats": args.repeats, "rows": rows}


def table(result: dict) -> str:
    lines = [f"accel={result['accel']} duration={result['duration']}s "
             f"repeats={result['repeats']}",
             f"{'test':<16} {'vcpus':>5} {'ops/s':>10} {'spread':>9}  verdict / per-kind ops/s"]
    for r in result["rows"]:
        p = r["properties"]
        rate = p.get("ops_per_s_median", p.get("ops_per_s", "-"))
        spread = p.get("ops_per_s_spread", "-")
        kinds = " ".join(f"{k.removesuffix('_ops_per_s')}={v}" for k, v in sorted(p.items())
                         if k.endswith("_ops_per_s") and k != "ops_per_s")
        verdict = r["status"] + (f" ({r['message']})" if r["message"] else "")
        lines.append(f"{r['test']:<16} {r['vcpus']:>5} {rate:>10} {spread:>9}  {verdict}")
        if kinds:
            lines.append(f"{'':<34}{kinds}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", help="bzImage to boot (default: build the baseline)")
    ap.add_argument("--vcpus", default="1,2,4")
    ap.add_argument("--tests", default=",".join(DEFAULT_TESTS))
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = run(args)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0 if all(r["status"] == "pass" for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
