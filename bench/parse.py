"""Console parser throughput on a large real log; print MB/s and seconds per size.

usage: .venv/bin/python bench/parse.py [--log LOG] [--sizes 1,10,100] [--big-mb 100]
           [--repeats 3] [--check]

The log (by default the seeded-bug corpus, ten boots and fourteen reports of
ten kinds) is repeated whole, 1x, 10x, 100x and about --big-mb MB: a long
console of many boots, as `kpv run` appends them. Two paths are timed:

  parse  console.parse on text already cleaned;
  kpv    what `kpv parse LOG` does before printing: read the file,
         sanitize.clean, analysis.analyse (markers.parse, console.parse,
         endings.ending, console.attribute).

Each figure is the best of --repeats runs (one run for the big log), in
CPU seconds of this process (time.process_time) and, in brackets, wall
seconds: on a machine shared with kernel builds the wall clock measures the
neighbours as much as the parser, so the load average is printed too. MB is
10^6 bytes of the raw log. Growth is linear when CPU seconds per MB stay
flat across sizes; --check exits 1 when they grow by more than half, or
when `kpv` is under the 30 MB/s target at the largest size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import analysis, console, endings, markers, sanitize  # noqa: E402

DEFAULT_LOG = ROOT / "tests" / "data" / "console" / "faults-6.1-ten-boots-seeded-bugs.log"
TARGET_MB_S = 30.0  # kpv parse's throughput target, as the README gives it
LINEAR_SLACK = 1.5  # s/MB may vary by this factor across sizes before growth counts as superlinear
MB = 1e6


def _best(fn, repeats: int) -> tuple[float, float, int]:
    """(best CPU seconds, best wall seconds, the function's result) over repeats runs."""
    cpu, wall, out = float("inf"), float("inf"), 0
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return cpu, wall, out


def _kpv_parse(path: Path) -> int:
    """The `kpv parse` path up to printing; the number of reports."""
    text = sanitize.clean(path.read_bytes())
    return len(analysis.analyse(text).reports)


def stages(path: Path) -> str:
    """CPU seconds of each step of the `kpv parse` path, once, on one file."""
    out = []

    def step(name: str, fn):
        t0 = time.process_time()
        got = fn()
        out.append(f"{name} {time.process_time() - t0:.3f} s")
        return got

    data = step("read", path.read_bytes)
    text = step("sanitize.clean", lambda: sanitize.clean(data))
    marks = step("markers.parse", lambda: markers.parse(text))
    reports = step("console.parse", lambda: console.parse(text))
    reports += step("endings.ending", lambda: endings.ending(text, marks, reports))
    step("console.attribute", lambda: console.attribute(reports, marks))
    return ", ".join(out)


def bench(log: Path, times: list[int], repeats: int, tmp: Path) -> list[dict]:
    raw = log.read_bytes()
    rows = []
    for n in times:
        data = raw * n
        path = tmp / f"x{n}.log"
        path.write_bytes(data)
        clean = sanitize.clean(data)
        runs = 1 if len(data) > 20 * MB else repeats
        parse_s, parse_wall, found = _best(lambda c=clean: len(console.parse(c)), runs)
        kpv_s, kpv_wall, _ = _best(lambda p=path: _kpv_parse(p), runs)
        steps = stages(path) if n == max(times) else ""
        path.unlink()
        mb = len(data) / MB
        rows.append({"times": n, "mb": mb, "reports": found, "parse_s": parse_s,
                     "parse_wall": parse_wall, "parse_mb_s": mb / parse_s, "kpv_s": kpv_s,
                     "kpv_wall": kpv_wall, "kpv_mb_s": mb / kpv_s})
        _print_row(rows[-1])
        if steps:
            print(f"        {n}x step by step (CPU): {steps}")
    return rows


def _print_row(r: dict) -> None:
    print(f"{r['times']:>5}x {r['mb']:8.2f} MB {r['reports']:6d} reports | parse "
          f"{r['parse_s']:7.3f} s ({r['parse_wall']:7.3f}) {r['parse_mb_s']:6.1f} MB/s | "
          f"kpv parse {r['kpv_s']:7.3f} s ({r['kpv_wall']:7.3f}) {r['kpv_mb_s']:6.1f} MB/s",
          flush=True)


def verdict(rows: list[dict]) -> list[str]:
    """What is wrong with the figures: superlinear growth, or under the target."""
    problems = []
    for key in ("parse_s", "kpv_s"):
        per_mb = [r[key] / r["mb"] for r in rows if r["mb"] >= 1]  # tiny runs are noise
        if len(per_mb) > 1 and max(per_mb) > LINEAR_SLACK * min(per_mb):
            problems.append(f"{key[:-2]}: s/MB from {min(per_mb):.4f} to {max(per_mb):.4f}: "
                            "not linear")
    if rows[-1]["kpv_mb_s"] < TARGET_MB_S:
        problems.append(f"kpv parse: {rows[-1]['kpv_mb_s']:.1f} MB/s at {rows[-1]['mb']:.0f} MB, "
                        f"under the {TARGET_MB_S:.0f} MB/s target")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--log", type=Path, default=DEFAULT_LOG)
    p.add_argument("--sizes", default="1,10,100", help="repetitions of the log, comma-separated")
    p.add_argument("--big-mb", type=float, default=100.0, help="one more size of about this "
                   "many MB; 0 for none")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--check", action="store_true", help="exit 1 on superlinear growth or a "
                   "miss of the target")
    args = p.parse_args(argv)
    size = args.log.stat().st_size
    times = [int(x) for x in args.sizes.split(",")]
    if args.big_mb:
        times.append(max(1, round(args.big_mb * MB / size)))
    print(f"log: {args.log.name} ({size / MB:.3f} MB); python {sys.version.split()[0]}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kpv-bench-") as tmp:
        rows = bench(args.log, sorted(set(times)), args.repeats, Path(tmp))
    problems = verdict(rows)
    for line in problems or ["linear growth; kpv parse at or above the target"]:
        print(line)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
