"""Console parser throughput on a large real log; print MB/s and seconds per size.

usage: .venv/bin/python bench/parse.py [--log LOG] [--sizes 1,10,100] [--big-mb 100]
           [--hostile-mb N] [--repeats 3] [--check]

The log (by default the seeded-bug corpus, ten boots and fourteen reports of
ten kinds) is repeated whole, 1x, 10x, 100x and about --big-mb MB: a long
console of many boots, as `kpv run` appends them. Two paths are timed:

  parse  console.parse on text already cleaned;
  kpv    what `kpv parse LOG` does before printing: read and clean the
         file in pieces (logtext.Cleaned), analysis.analyse (markers.parse,
         console.parse, endings.ending, console.attribute).

At the largest size the real `kpv parse LOG` also runs in a child process,
as for the hostile inputs below, and its peak RSS is printed as a ratio to
the log's size; --check wants at most 5.

Each figure is the best of --repeats runs (one run for the big log), in
CPU seconds of this process (time.process_time) and, in brackets, wall
seconds: on a machine shared with kernel builds the wall clock measures the
neighbours as much as the parser, so the load average is printed too. MB is
10^6 bytes of the raw log. Growth is linear when CPU seconds per MB stay
flat across sizes; --check exits 1 when they grow by more than half, or
when `kpv` is under the 30 MB/s target at the largest size.

--hostile-mb N also times inputs of about N MB that no real console holds,
generated here (none is captured): random bytes, all NULs, all newlines,
one huge line (the log without its line ends), BUG: and WARNING: lines
(one report each, the WARNINGs each in a function of its own; 100 MB
hold 1.4 million BUG: lines) and `@@kpv start fork` markers, as many
lines as fit. For each: the `kpv`
path's MB/s as above, then the real `kpv parse LOG` in a child process
(its output to /dev/null), whose CPU seconds and peak RSS (getrusage) are
printed, the RSS as a ratio to the input's size: raw, and net of what
`kpv parse` takes on an empty log (the interpreter and its imports).
--check then also wants at least 10 MB/s and a net ratio of at most 5.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import analysis, console, endings, markers  # noqa: E402
from pipeline.logtext import Cleaned  # noqa: E402

DEFAULT_LOG = ROOT / "tests" / "data" / "console" / "faults-6.1-ten-boots-seeded-bugs.log"
TARGET_MB_S = 30.0  # kpv parse's throughput target, as the README gives it
LINEAR_SLACK = 1.5  # s/MB may vary by this factor across sizes before growth counts as superlinear
MB = 1e6
HOSTILE_MB_S = 10.0  # the least throughput on any input
HOSTILE_RATIO = 5.0  # the most peak RSS, net of the interpreter's, per byte of input
REAL_RATIO = 5.0  # the most peak RSS per byte of a big real console


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
    return len(analysis.analyse(Cleaned.of_path(path)).reports)


def stages(path: Path) -> str:
    """CPU seconds of each step of the `kpv parse` path, once, on one file."""
    out = []

    def step(name: str, fn):
        t0 = time.process_time()
        got = fn()
        out.append(f"{name} {time.process_time() - t0:.3f} s")
        return got

    log = step("read and clean", lambda: Cleaned.of_path(path))
    marks = step("markers.parse", lambda: markers.parse(log))
    reports = step("console.parse", lambda: console.parse(log))
    reports += step("endings.ending", lambda: endings.ending(log, marks, reports))
    step("console.attribute", lambda: console.attribute(reports, marks))
    return ", ".join(out)


def bench(log: Path, times: list[int], repeats: int, tmp: Path) -> list[dict]:
    raw = log.read_bytes()
    rows = []
    for n in times:
        path = tmp / f"x{n}.log"
        path.write_bytes(raw * n)
        size = path.stat().st_size
        clean = Cleaned.of_path(path)
        runs = 1 if size > 20 * MB else repeats
        parse_s, parse_wall, found = _best(lambda c=clean: len(console.parse(c)), runs)
        del clean
        kpv_s, kpv_wall, _ = _best(lambda p=path: _kpv_parse(p), runs)
        mb = size / MB
        rows.append({"times": n, "mb": mb, "reports": found, "parse_s": parse_s,
                     "parse_wall": parse_wall, "parse_mb_s": mb / parse_s, "kpv_s": kpv_s,
                     "kpv_wall": kpv_wall, "kpv_mb_s": mb / kpv_s})
        _print_row(rows[-1])
        if n == max(times):
            print(f"        {n}x step by step (CPU): {stages(path)}")
            cpu, rss = _child(path)
            rows[-1]["ratio"] = rss / size
            print(f"        {n}x kpv parse in a child: {cpu:.2f} s CPU, {mb / cpu:.1f} MB/s, "
                  f"peak RSS {rss / MB:.0f} MB = {rss / size:.1f}x the log", flush=True)
        path.unlink()
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
    if rows[-1]["ratio"] > REAL_RATIO:
        problems.append(f"kpv parse: peak RSS {rows[-1]['ratio']:.1f}x the log at "
                        f"{rows[-1]['mb']:.0f} MB, over {REAL_RATIO:.0f}x")
    return problems


def hostile(kind: str, size: int, log: Path = DEFAULT_LOG) -> bytes:
    """Generated, not captured: about size bytes of console no kernel printed."""
    if kind == "random":
        return random.Random(kind).randbytes(size)
    if kind == "nul":
        return bytes(size)
    if kind == "newlines":
        return b"\n" * size
    if kind == "one-line":  # a real console, every line end removed
        flat = log.read_bytes().replace(b"\r", b"").replace(b"\n", b"")
        return (flat * (size // len(flat) + 1))[:size]
    line = {"bug-lines": "[{s:12.6f}] BUG: scheduling while atomic: storm/{i}/0x00000002",
            "warning-lines": "[{s:12.6f}] WARNING: CPU: 0 PID: 1 at mm/storm.c:{i} "
                             "storm_{i}+0x1a/0x2b",
            "markers": "@@kpv start fork"}[kind]
    out, n, i = [], 0, 0
    while n < size:
        out.append(line.format(s=i / 1000, i=i) + "\n")
        n += len(out[-1])
        i += 1
    return "".join(out).encode()


HOSTILE = ("random", "nul", "newlines", "one-line", "bug-lines", "warning-lines", "markers")


# Runs `kpv parse` and prints its CPU seconds and peak RSS. The child is started from this
# small process, not from the bench: Linux carries the peak RSS of the process that forks
# across exec, so a child of the bench would report the bench's own (generated) inputs.
_LAUNCH = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], "
           "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(u.ru_utime + u.ru_stime, u.ru_maxrss)")


def _child(path: Path) -> tuple[float, int]:
    """CPU seconds and peak RSS in bytes of `kpv parse path` in a process of its own."""
    out = subprocess.run([sys.executable, "-c", _LAUNCH, sys.executable, "-m", "pipeline",
                          "parse", str(path)], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[0]), int(out[1]) * 1024  # ru_maxrss is in KiB on Linux


def bench_hostile(mb: float, repeats: int, tmp: Path) -> list[dict]:
    empty = tmp / "empty.log"
    empty.write_bytes(b"")
    base_cpu, base_rss = min(_child(empty) for _ in range(repeats))
    print(f"hostile inputs, generated ({mb:g} MB each); kpv parse of an empty log: "
          f"{base_cpu:.2f} s CPU, {base_rss / MB:.0f} MB peak RSS")
    rows = []
    for kind in HOSTILE:
        path = tmp / f"{kind}.log"
        path.write_bytes(hostile(kind, int(mb * MB)))
        size = path.stat().st_size
        kpv_s, kpv_wall, found = _best(lambda p=path: _kpv_parse(p), repeats)
        cpu, rss = min(_child(path) for _ in range(repeats))
        path.unlink()
        r = {"kind": kind, "mb": size / MB, "reports": found, "kpv_mb_s": size / MB / kpv_s,
             "kpv_wall": kpv_wall, "cli_s": cpu, "cli_mb_s": size / MB / max(cpu - base_cpu,
                                                                               1e-3),
             "rss": rss, "ratio": rss / size, "net_ratio": (rss - base_rss) / size}
        rows.append(r)
        print(f"{kind:>13} {r['mb']:7.2f} MB {found:6d} reports | kpv parse path "
              f"{r['kpv_mb_s']:6.1f} MB/s ({kpv_wall:6.2f} s wall) | child {cpu:6.2f} s CPU, "
              f"{r['cli_mb_s']:6.1f} MB/s net, peak RSS {rss / MB:7.0f} MB = "
              f"{r['ratio']:5.1f}x raw, {r['net_ratio']:5.1f}x net", flush=True)
    return rows


def hostile_verdict(rows: list[dict]) -> list[str]:
    return [f"{r['kind']}: {r['kpv_mb_s']:.1f} MB/s, {r['net_ratio']:.1f}x memory: under "
            f"{HOSTILE_MB_S:.0f} MB/s or over {HOSTILE_RATIO:.0f}x"
            for r in rows if r["kpv_mb_s"] < HOSTILE_MB_S or r["net_ratio"] > HOSTILE_RATIO]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--log", type=Path, default=DEFAULT_LOG)
    p.add_argument("--sizes", default="1,10,100", help="repetitions of the log, comma-separated")
    p.add_argument("--big-mb", type=float, default=100.0, help="one more size of about this "
                   "many MB; 0 for none")
    p.add_argument("--hostile-mb", type=float, default=0.0, help="also time generated hostile "
                   "inputs of about this many MB each, and kpv parse's peak memory on them")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--check", action="store_true", help="exit 1 on superlinear growth or a "
                   "miss of the target")
    args = p.parse_args(argv)
    size = args.log.stat().st_size
    times = [int(x) for x in args.sizes.split(",") if x]
    if args.big_mb:
        times.append(max(1, round(args.big_mb * MB / size)))
    print(f"log: {args.log.name} ({size / MB:.3f} MB); python {sys.version.split()[0]}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kpv-bench-") as tmp:
        rows = bench(args.log, sorted(set(times)), args.repeats, Path(tmp)) if times else []
        hostile_rows = bench_hostile(args.hostile_mb, args.repeats, Path(tmp)) \
            if args.hostile_mb else []
    problems = (verdict(rows) if rows else []) + hostile_verdict(hostile_rows)
    for line in problems or ["linear growth; kpv parse at or above the target"]:
        print(line)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
