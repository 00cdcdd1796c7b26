"""The `kpv` command. Exit codes: 0 all passed, 1 the kernel or series failed,
2 kpv could not do its job (bad input, missing tool, QEMU died), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.errors import KpvError

DEFAULT_JOB = Path(__file__).resolve().parent.parent / "jobs" / "anon-vma.toml"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KpvError as e:
        print(f"kpv: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kpv: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpv", description="Kernel patch validation.")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a job: apply, build, boot, stress, report")
    r.add_argument("job", nargs="?", type=Path, default=DEFAULT_JOB,
                   help="job file (default: jobs/anon-vma.toml)")
    r.add_argument("--tree", help='"debian:linux-source-6.1" or a kernel git checkout')
    r.add_argument("--series", help="series source (a folder of revisions)")
    r.add_argument("--revisions", type=_names, help="comma-separated, e.g. baseline,v1")
    r.add_argument("--vcpus", type=_ints, help="comma-separated vCPU counts, e.g. 1,2,4")
    r.add_argument("--tests", type=_names, help="comma-separated test names")
    r.add_argument("--duration", type=int, help="seconds per stress test")
    r.add_argument("--accel", choices=["auto", "kvm", "tcg"])
    r.add_argument("--out", type=Path, help="output folder (default: kpv-out)")
    r.add_argument("--cell", help="run one cell only, REV:VCPUS (for CI sharding)")
    r.set_defaults(func=_cmd_run)

    pa = sub.add_parser("parse", help="find kernel reports in a console log")
    pa.add_argument("log", type=Path)
    pa.add_argument("--json", action="store_true", help="print the reports as JSON")
    pa.set_defaults(func=_cmd_parse)

    s = sub.add_parser("series", help="show the revisions and patches of a series")
    s.add_argument("source")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_series)

    rp = sub.add_parser("report", help="write junit.xml again from OUT/results.json")
    rp.add_argument("dir", type=Path)
    rp.set_defaults(func=_cmd_report)

    m = sub.add_parser("merge", help="merge shard output folders into one")
    m.add_argument("dirs", nargs="+", type=Path)
    m.add_argument("-o", "--out", type=Path, required=True)
    m.set_defaults(func=_cmd_merge)
    return p


def _names(s: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in s.split(",") if x.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {s!r}")
    return names


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in _names(s))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline import job as jobmod
    from pipeline import runner, series
    from pipeline.errors import UserError
    from pipeline.report import junit

    job = jobmod.override(jobmod.load(args.job), jobmod.Overrides(
        tree=args.tree, series=args.series, revisions=args.revisions, vcpus=args.vcpus,
        tests=args.tests, duration=args.duration, accel=args.accel, out=args.out))
    ser = series.load(job.series)
    names = list(job.revisions) or [series.BASELINE, *(r.name for r in ser.revisions)]
    cells = {name: list(job.vcpus) for name in names}
    if args.cell:
        rev, _, n = args.cell.partition(":")
        if rev not in cells or not n.isdigit():
            raise UserError(f"--cell {args.cell}: expected REV:VCPUS with REV one of "
                            f"{', '.join(names)}")
        cells = {rev: [int(n)]}
    revisions = [ser.revision(name) for name in cells]
    progress = Progress()
    run = runner.new_run(job)
    run.properties["series"] = ser.source
    job.out.mkdir(parents=True, exist_ok=True)
    try:
        ctx = runner.prepare(job, run, progress)
        for rev in revisions:
            ctx = runner.run_revision(ctx, rev, run, progress, cells[rev.name])
    finally:
        # Whatever happened, what ran so far is written (Ctrl-C included).
        run.save(job.out / "results.json")
        junit.write(run, job.out)
        progress(f"results: {job.out / 'junit.xml'}, {job.out / 'results.json'}")
    _summary(run)
    return run.exit_code()


def _summary(run) -> None:
    for s in run.suites:
        bad = [c for c in s.cases if c.status.value != "pass"]
        line = "ok" if not bad else "; ".join(f"{c.name}: {c.status.value}: {c.message}"
                                              for c in bad)
        print(f"{s.name}: {line}")


def _cmd_parse(args: argparse.Namespace) -> int:
    from pipeline import console, markers, sanitize
    from pipeline.errors import UserError

    try:
        text = sanitize.clean(args.log.read_bytes())
    except OSError as e:
        raise UserError(f"{args.log}: cannot read: {e.strerror}") from None
    reports = console.attribute(console.parse(text), markers.parse(text))
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=1))
    else:
        for r in reports:
            where = f"test {r.test}" if r.test else "boot"
            flag = " [corrupted]" if r.corrupted else ""
            print(f"{r.type}: {r.title} ({where}, line {r.first_line + 1}){flag}")
    return 1 if reports else 0


def _cmd_series(args: argparse.Namespace) -> int:
    from pipeline import series

    ser = series.load(args.source)
    if args.json:
        print(json.dumps({"name": ser.name, "source": ser.source, "revisions": [
            {"name": r.name, "description": r.description, "expect": r.expect,
             "patches": [str(p) for p in r.patches]} for r in ser.revisions]}, indent=1))
    else:
        for r in ser.revisions:
            print(f"{r.name}: {len(r.patches)} patches  {r.description}")
            for p in r.patches:
                print(f"  {p.name}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError
    from pipeline.report import junit
    from pipeline.results import Run

    path = args.dir / "results.json"
    if not path.is_file():
        raise UserError(f"{path}: no results.json in that folder")
    run = Run.load(path)
    print(junit.write(run, args.dir))
    return run.exit_code()


def _cmd_merge(args: argparse.Namespace) -> int:
    from pipeline.errors import UserError
    from pipeline.report import junit
    from pipeline.results import Run, merge

    runs = []
    for d in args.dirs:
        if not (d / "results.json").is_file():
            raise UserError(f"{d}: no results.json in that folder")
        runs.append(Run.load(d / "results.json"))
    run = merge(runs)
    run.save(args.out / "results.json")
    print(junit.write(run, args.out))
    return run.exit_code()


class Progress:
    """One line per step on stderr, with the time since the run started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)
