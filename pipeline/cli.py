"""The `kpv` command. Exit codes: 0 all passed, 1 the kernel or series failed,
2 kpv could not do its job (bad input, missing tool, QEMU died, a full disk),
3 a bug in kpv (the traceback saved in the output folder), 130 interrupted,
141 the reader of its output went away (`kpv parse LOG | head`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from pipeline import atomic, provenance, treesource
from pipeline.errors import KpvError
from pipeline.packaged import DEFAULT_JOB


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # CI cancels a job with SIGTERM: stop as on Ctrl-C, so QEMU is killed and results written.
    signal.signal(signal.SIGTERM, _interrupt)
    # A shell that starts kpv in the background ignores SIGINT for it: SIGINT still stops it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Where a crash's traceback goes: the folder the command writes (run: once known).
    args.out_dir = getattr(args, "out", None) or getattr(args, "dir", None)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
        return code
    except KpvError as e:
        print(f"kpv: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kpv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Point stdout at /dev/null, or flushing it at exit fails once more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as e:
        if e.errno not in _MACHINE_ERRNOS:
            return _crash(args)
        # A full, read-only or failing disk: the machine's fault, named in one line.
        where = Path(e.filename) if e.filename else None
        what = f"{where.parent}: cannot write {where.name}" if where else "cannot write"
        print(f"kpv: error: {what}: {e.strerror}", file=sys.stderr)
        return 2
    except Exception:
        return _crash(args)


# What the machine, not kpv, gets wrong when a write fails.
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG,
                   errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR}
CRASH_FILE = "kpv-crash.txt"


def _crash(args: argparse.Namespace) -> int:
    """A bug in kpv: exit 3, the traceback saved in the output folder when there is one."""
    text = traceback.format_exc()
    exc = sys.exc_info()[1]
    summary = f"kpv: internal error (a bug in kpv): {type(exc).__name__}: {exc}"
    out = getattr(args, "out_dir", None)
    if out is not None:
        try:
            atomic.write(out / CRASH_FILE, text.encode())
            print(f"{summary}; traceback in {out / CRASH_FILE}", file=sys.stderr)
            return 3
        except OSError:
            pass
    print(text + summary, file=sys.stderr)
    return 3


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpv", description="Kernel patch validation.")
    p.add_argument("--version", action="version", version=f"kpv {provenance.kpv_version()}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run a job: apply, build, boot, stress, report")
    r.add_argument("job", nargs="?", type=Path, default=DEFAULT_JOB,
                   help="job file (default: jobs/anon-vma.toml)")
    r.add_argument("--tree", help='"debian:linux-source-X.Y" (Debian\'s 6.1 or 6.12 package) '
                   "or a kernel git checkout")
    r.add_argument("--series", action="append",
                   help="series source: a folder, mbox, patch, Message-ID, lore URL, pw:<id>, "
                        "commits of --tree (BASE..TIP, or NAME=BASE..TIP given once per "
                        "revision) or a b4 branch b4/CHANGE (see kpv series --help)")
    r.add_argument("--revisions", type=_names,
                   help="comma-separated, e.g. baseline,v1 (default: the job's; with "
                        "--series, baseline and every revision of that series)")
    r.add_argument("--vcpus", type=_ints, help="comma-separated vCPU counts, e.g. 1,2,4")
    r.add_argument("--tests", type=_names, help="comma-separated test names")
    r.add_argument("--duration", type=int, help="seconds per stress test")
    r.add_argument("--accel", choices=["auto", "kvm", "tcg"])
    r.add_argument("--kconfig-base", metavar="TARGET|FILE", help='"tinyconfig", "defconfig" '
                   "or your own .config; kpv's fragments go on top")
    r.add_argument("--out", type=Path, help="output folder (default: kpv-out)")
    r.add_argument("--cell", help="run one cell only, REV:VCPUS (for CI sharding)")
    r.add_argument("--baseline-results", type=Path, metavar="DIR",
                   help="judge revisions against the baseline of an earlier run's output "
                   "folder (same base commit, config and accelerator) instead of running it")
    r.add_argument("--gate", choices=["new", "any"],
                   help='what fails a revision: "new" reports only (default), or "any"')
    r.add_argument("--confirm", type=int, metavar="N",
                   help="boots more of a test that shows a new report (default 2; 0: none)")
    r.set_defaults(func=_cmd_run)

    pa = sub.add_parser("parse", help="find kernel reports in a console log")
    pa.add_argument("log", type=Path)
    pa.add_argument("--json", action="store_true", help="print the reports as JSON")
    pa.add_argument("--vmlinux", type=Path, help="the kernel's vmlinux: frames get file:line")
    pa.set_defaults(func=_cmd_parse)

    s = sub.add_parser("series", help="show the revisions and patches of a series")
    s.add_argument("source", help="a folder, mbox, maildir, patch, mail thread, Message-ID, "
                                  "lore URL, pw:<id>, patchwork URL, commits BASE..TIP "
                                  "(NAME=BASE..TIP ..., quoted as one argument) or b4/CHANGE")
    s.add_argument("--tree", type=Path, help="the git checkout holding commits (default: .)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--refresh", action="store_true", help="fetch lore/patchwork again")
    s.set_defaults(func=_cmd_series)

    a = sub.add_parser("apply", help="apply one revision into a new worktree (no build)")
    a.add_argument("source", help="a series source, as for `kpv series`")
    a.add_argument("--revision", help="revision name (default: the newest)")
    a.add_argument("--tree", default=treesource.DEFAULT,
                   help=f'"debian:linux-source-X.Y" (default {treesource.DEFAULT}) or a kernel '
                   "git checkout")
    a.add_argument("--worktree", type=Path, required=True, help="new folder to apply into")
    a.add_argument("--refresh", action="store_true", help="fetch lore/patchwork again")
    a.set_defaults(func=_cmd_apply)

    rp = sub.add_parser("report", help="write junit.xml again from OUT/results.json")
    rp.add_argument("dir", type=Path)
    rp.set_defaults(func=_cmd_report)

    c = sub.add_parser("compare", help="reports of run B against the baseline of run A: "
                       "new, intermittent, preexisting, fixed")
    c.add_argument("a", type=Path, metavar="DIR_A", help="output folder of the reference run")
    c.add_argument("b", type=Path, metavar="DIR_B", help="output folder of the run to judge")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.set_defaults(func=_cmd_compare)

    d = sub.add_parser("doctor", help="check this machine: tools, QEMU, KVM, the tree")
    d.set_defaults(func=_cmd_doctor)

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
    from pipeline import series
    from pipeline.errors import UserError
    from pipeline.report import junit
    from pipeline.run import runner, verdict

    cell = _cell(args.cell) if args.cell else None
    source = _series_source(args.series) if args.series else None
    job = jobmod.override(jobmod.load(args.job), jobmod.Overrides(
        tree=args.tree, series=source,
        # A --series of its own brings its own revisions: the job's list named another's.
        revisions=() if args.series and not args.revisions else args.revisions,
        vcpus=(cell[1],) if cell else args.vcpus,
        tests=args.tests, duration=args.duration, accel=args.accel, out=args.out,
        kconfig_base=args.kconfig_base, gate=args.gate, confirm=args.confirm))
    if job.out.exists() and not job.out.is_dir():
        raise UserError(f"--out {job.out}: exists and is not a folder")
    args.out_dir = job.out
    ser = series.load(job.series, tree=_git_tree(job.tree))
    if series.is_git(job.series):  # the revisions' own base, not the tree's HEAD
        job = replace(job, ref=ser.record["base_commit"])
    names = list(job.revisions) or [series.BASELINE, *(r.name for r in ser.revisions)]
    # The baseline first: each revision's reports are judged against what it showed.
    names.sort(key=lambda n: n != series.BASELINE)
    ref = verdict.reference(args.baseline_results) if args.baseline_results else None
    if ref is not None and series.BASELINE in names:
        names.remove(series.BASELINE)
    if cell:
        if cell[0] not in names:
            raise UserError(f"--cell {args.cell}: no revision {cell[0]!r} in this job "
                            f"(known: {', '.join(names)})")
        names = [cell[0]]
    revisions = [ser.revision(name) for name in names]
    progress = Progress()
    run = runner.new_run(job)
    run.properties["series"] = ser.source

    def save() -> None:
        run.comparison = verdict.comparisons(run, ref, str(args.baseline_results))
        run.save(job.out / "results.json")
        junit.write(run, job.out)

    save()  # from the start, a reader finds a valid (empty) run
    try:
        ctx = runner.prepare(job, run, progress)
        if ref is not None:
            verdict.check_reference(ref, run, args.baseline_results)
            run.properties["baseline_results"] = str(args.baseline_results)
        for rev in revisions:
            known = verdict.signatures(verdict.baseline_suites(run)
                                       + (verdict.baseline_suites(ref) if ref else []))
            ctx = runner.run_revision(ctx, rev, run, progress, list(job.vcpus), save,
                                      runner.judging(job, rev, known))
            runner.bisect(ctx, rev, run, progress, save)
    except BaseException:
        # What ran so far is written (Ctrl-C included); should that fail too
        # (a full disk), the error to report is the first one.
        with contextlib.suppress(OSError):
            save()
            progress(f"results so far: {job.out / 'junit.xml'}, {job.out / 'results.json'}")
        raise
    save()
    progress(f"results: {job.out / 'junit.xml'}, {job.out / 'results.json'}")
    _summary(run)
    return run.exit_code()


def _series_source(given: list[str]) -> str:
    """--series, once or (NAME=BASE..TIP, one per revision) more than once."""
    from pipeline import series
    from pipeline.errors import UserError

    if len(given) > 1 and not all(series.is_git(s) and "=" in s for s in given):
        raise UserError("--series: given more than once, each must be NAME=BASE..TIP "
                        f"(got {', '.join(given)})")
    return " ".join(given)


def _git_tree(source: str) -> Path | None:
    """The tree that git series are read from; None for Debian's tarball."""
    return None if treesource.is_debian(source) else Path(source)


def _cell(text: str) -> tuple[str, int]:
    """--cell REV:VCPUS, its vCPU count within the bounds of guest.vcpus."""
    from pipeline import job
    from pipeline.errors import UserError

    rev, _, n = text.partition(":")
    # ASCII digits only: str.isdigit() takes "²", which int() refuses.
    if not rev or not re.fullmatch(r"[0-9]{1,9}", n):
        raise UserError(f"--cell {text}: expected REV:VCPUS, e.g. v1:2")
    problems = job.vcpu_problems((int(n),))
    if problems:
        raise UserError(f"--cell {text}: {problems[0]}")
    return rev, int(n)


def _summary(run) -> None:
    for s in run.suites:
        bad = [c for c in s.cases if c.status.value != "pass"]
        line = "ok" if not bad else "; ".join(f"{c.name}: {c.status.value}: {c.message}"
                                              for c in bad)
        print(f"{s.name}: {line}")
    from pipeline.run import verdict

    for rev, c in run.comparison.items():
        print("\n".join(verdict.describe(rev, c)))


def _cmd_parse(args: argparse.Namespace) -> int:
    from pipeline import analysis, console, markers, symbols
    from pipeline.errors import UserError
    from pipeline.logtext import Cleaned

    try:
        log = Cleaned.of_path(args.log)
    except OSError as e:
        raise UserError(f"{args.log}: cannot read: {e.strerror}") from None
    seen = analysis.analyse(log)
    reports = seen.reports
    decoded = [symbols.resolve(args.vmlinux, symbols.frames_in(r.text)) if args.vmlinux
               else symbols.Symbols() for r in reports]
    if args.json:
        rows = [{**asdict(r), "lines": s.lines} for r, s in zip(reports, decoded, strict=True)]
        print(json.dumps(rows, indent=1))
    else:
        first_seen: dict[str, int] = {}
        for r, s in zip(reports, decoded, strict=True):
            where = f"test {r.test}" if r.test else "boot"
            line = r.first_line + 1
            flag = f" [corrupted: {r.reason}]" if r.corrupted else ""
            again = f", same as line {first_seen[r.signature]}" if r.signature in first_seen \
                else ""
            first_seen.setdefault(r.signature, line)
            print(f"{r.type}: {r.title} ({where}, line {line}{again}){flag}")
            if r.chain:
                print(f"    chain, as printed: {', '.join(r.chain)}")
            for frame in s.lines:
                print(f"    {frame}  {symbols.describe(frame, s)}")
            if args.vmlinux and s.reason:
                print(f"    (symbols: {s.reason})")
        print(f"{len(reports)} report(s), {len(first_seen)} distinct")
        if seen.unread:
            print(f"and {seen.unread} more line(s) that may start a report, after the first "
                  f"{console.REPORTS_MAX} reports: counted, not read")
        if seen.unread_markers:
            print(f"and {seen.unread_markers} more marker(s) after the first "
                  f"{markers.MARKERS_MAX}: counted, not read (reports after them are "
                  "attributed as if none followed)")
    return 1 if reports else 0


def _cmd_series(args: argparse.Namespace) -> int:
    from pipeline import series

    ser = series.load(args.source, refresh=args.refresh, tree=args.tree)
    revs = [series.describe(r) for r in ser.revisions]
    if args.json:
        # default=str: series.toml may hold TOML dates.
        print(json.dumps({"name": ser.name, "source": ser.source, "record": ser.record,
                          "revisions": revs}, indent=1, default=str))
        return 0
    for r in revs:
        label = " [QUOTED in a reply, not the author's mail]" if r["quoted"] else ""
        print(f"{r['name']}: {len(r['patches'])} patches, {len(r['files'])} files, "
              f"{r['hunks']} hunks{label}  {r['description']}")
        for key in ("origin", "message_id", "base_commit"):
            if r[key]:
                print(f"  {key.replace('_', '-')}: {r[key]}")
        for problem in r["problems"]:
            print(f"  PROBLEM: {problem}")
        for p in r["patch_details"]:
            print(f"  {Path(p['file']).name}  {p['subject']}")
            for t in p["trailers"]:
                print(f"    {t}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from pipeline import basecheck, series, tree
    from pipeline.errors import UserError

    ser = series.load(args.source, refresh=args.refresh, tree=_git_tree(args.tree))
    if not ser.revisions:
        raise UserError(f"{args.source}: no revisions")
    rev = ser.revision(args.revision or ser.revisions[-1].name)
    wt = args.worktree
    if wt.exists() and any(wt.iterdir()):
        raise UserError(f"--worktree {wt}: exists and is not empty; give a new folder")
    base = tree.find_base(args.tree)
    if rev.base_commit:
        p = tree.git(base.repo, "cat-file", "-e", f"{rev.base_commit}^{{commit}}", check=False)
        if p.returncode == 0:
            base = tree.find_base(str(base.repo), rev.base_commit)
            print(f"base-commit {rev.base_commit}: found in the tree, applying onto it")
        else:
            print(f"base-commit {rev.base_commit}: not in {args.tree}; using {base.describe}")
    print(f"{rev.name}: {len(rev.patches)} patch(es) from {rev.origin or ser.source}"
          + (" [QUOTED in a reply]" if rev.quoted else ""))
    print(f"base: {base.describe} ({base.commit[:12]})")
    print(f"base check: {basecheck.check(base.repo, base.commit, list(rev.patches)).summary()}")
    wt.parent.mkdir(parents=True, exist_ok=True)
    tree.git(wt.parent, "clone", "-q", "--shared", "--no-checkout", str(base.repo), str(wt))
    tree.git(wt, "checkout", "-q", "--detach", base.commit)
    t0 = time.monotonic()
    res = tree.apply(wt, base, list(rev.patches), keep=wt / ".git" / "kpv-applied")
    for name, strategy in res.strategies:
        print(f"{name}: {strategy}")
    if not res.ok:
        print(f"{res.failed_patch}: FAILED: {res.message}")
        print(res.log.rstrip()[-3000:], file=sys.stderr)
        return 1
    print(f"applied {len(res.applied)} patch(es) in {time.monotonic() - t0:.1f} s into {wt}; "
          f"as applied: {wt / '.git' / 'kpv-applied'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import junit
    from pipeline.results import Run

    run = Run.load(args.dir / "results.json")
    print(junit.write(run, args.dir))
    return run.exit_code()


def _cmd_merge(args: argparse.Namespace) -> int:
    from pipeline.report import junit
    from pipeline.results import Run, merge
    from pipeline.run import verdict

    run = merge([(d, Run.load(d / "results.json")) for d in args.dirs])
    # A shard holding one revision judged it against the baseline shard's run, if given
    # one (--baseline-results); merged, the baseline may be here: judge again where it is.
    run.comparison = {**run.comparison, **verdict.comparisons(run)}
    run.save(args.out / "results.json")
    print(junit.write(run, args.out))
    return run.exit_code()


def _cmd_compare(args: argparse.Namespace) -> int:
    from pipeline.results import Run
    from pipeline.run import verdict

    found = verdict.between(Run.load(args.a / "results.json"),
                            Run.load(args.b / "results.json"), str(args.a))
    if args.json:
        print(json.dumps({rev: asdict(c) for rev, c in found.items()}, indent=1))
    else:
        for rev, c in found.items():
            print("\n".join(verdict.describe(rev, c)))
    return 1 if any(c.reports.new or c.reports.intermittent for c in found.values()) else 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from pipeline import doctor

    results = doctor.checks()
    for c in results:
        print(f"{'ok' if c.ok else 'MISSING':8} {c.name}: {c.detail}")
    return 0 if all(c.ok for c in results) else 2


class Progress:
    """One line per step on stderr, with the time since the run started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)
