"""What a revision changed: its kernel reports against the baseline's.

A report is known by its signature (console.Report.signature: the kind and
the title or lock cycle, without addresses, lines, PIDs, CPUs or times), so
the same bug in two kernels built from different sources is one report.
Every function here is pure: results in, a Comparison out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipeline.errors import UserError
from pipeline.results import Case, Comparison, ReportChanges, Run, Seen, Status, Suite
from pipeline.run import lockdeps, timings_compare
from pipeline.run.cell import LOCKDEP_OFF
from pipeline.series import BASELINE

THIS_RUN = "this run"


def baseline_suites(run: Run) -> list[Suite]:
    """The baseline's cells in a run."""
    return [s for s in run.suites if s.revision == BASELINE and s.vcpus is not None]


def signatures(suites: Iterable[Suite]) -> frozenset[str]:
    """Every report signature the suites' cases hold."""
    return frozenset(r.signature for s in suites for c in s.cases for r in c.reports
                     if r.type != LOCKDEP_OFF)


def comparisons(run: Run, reference: Run | None = None,
                where: str = THIS_RUN) -> dict[str, Comparison]:
    """Each revision of `run` against the baseline: this run's, and `reference`'s (an
    earlier run's results, named by `where`). No baseline at all: no comparison, for a
    report cannot be called new against nothing. A bisection already recorded stays."""
    base = baseline_suites(run) + (baseline_suites(reference) if reference else [])
    if not base:
        return {}
    source = where if reference else THIS_RUN
    return {rev: _compare(base, run, rev, source)
            for rev in dict.fromkeys(s.revision for s in run.suites if s.revision != BASELINE)}


def _compare(base: list[Suite], run: Run, rev: str, where: str) -> Comparison:
    """Revision `rev` of `run` against the baseline's cells; its bisection, if any, kept."""
    cells = [s for s in run.suites if s.revision == rev and s.vcpus is not None]
    old = run.comparison.get(rev)
    return Comparison(where, classify(base, cells), old.first_bad_patch if old else None,
                      lockdeps.compare(base, cells, _order(run, rev)),
                      timings_compare.compare(base, cells))


def _order(run: Run, rev: str) -> list[tuple[str, str]]:
    """The lock order the revision's tree documents, as its suite recorded it (pairs of
    another length, from a hand-edited results.json, say nothing)."""
    suite = next((s for s in run.suites if s.revision == rev and s.vcpus is None), None)
    return [(p[0], p[1]) for p in suite.lock_order if len(p) == 2] if suite else []


def between(a: Run, b: Run, where: str) -> dict[str, Comparison]:
    """Run b's revisions against run a: its baseline, or all of it when a ran none (the
    base commit run as a revision of its own). b's own baseline is judged only when b
    holds nothing else."""
    base = baseline_suites(a) or [s for s in a.suites if s.vcpus is not None]
    revisions = [r for r in _revisions(b) if r != BASELINE] or [BASELINE]
    return {rev: _compare(base, b, rev, where) for rev in revisions}


def describe(rev: str, c: Comparison) -> list[str]:
    """A comparison as lines for people: counts, then each report with where it showed."""
    ch = c.reports
    lines = [f"{rev} against the baseline of {c.baseline}: {len(ch.new)} new, "
             f"{len(ch.intermittent)} intermittent, {len(ch.preexisting)} preexisting, "
             f"{len(ch.fixed)} fixed"]
    for label, seen in (("new", ch.new), ("intermittent", ch.intermittent),
                        ("preexisting", ch.preexisting), ("fixed", ch.fixed)):
        for s in seen:
            where = ", ".join(s.cells[:4]) + (f" and {len(s.cells) - 4} more"
                                              if len(s.cells) > 4 else "")
            whose = " of the baseline" if label == "fixed" else ""
            lines.append(f"  {label:12} {s.signature}")
            lines.append(f"  {'':12} in {s.boots_seen} of {s.boots_run} boots{whose}: {where}")
    if c.first_bad_patch:
        f = c.first_bad_patch
        lines.append(f"  first bad patch: {f.index}/{f.of} {f.subject} ({f.patch})")
    deps = c.lock_dependencies
    for label, edges in (("new lock dependency", deps.new_edges if deps else []),
                         ("AGAINST the documented lock order",
                          deps.against_documented_order if deps else [])):
        lines += [f"  {label}: {e['from']} -> {e['to']}" for e in edges]
    if deps and deps.undocumented_classes:
        lines.append(f"  locks the documented order does not name: "
                     f"{', '.join(deps.undocumented_classes)}")
    for t in c.timings:
        few = min(t.runs, t.baseline_runs) < timings_compare.MIN_RUNS
        spread = (f"no interval from {t.runs} and {t.baseline_runs} run(s): "
                  f"{timings_compare.MIN_RUNS} a side needed (guest.repeats)" if few else
                  f"95% [{t.ci_low:.3f}, {t.ci_high:.3f}] from {t.runs} and "
                  f"{t.baseline_runs} runs")
        lines.append(f"  {t.test} at {t.vcpus} vCPUs: {t.verdict}, {t.metric} {t.median:g} "
                     f"vs {t.baseline_median:g} (x{t.ratio:.3f}; {spread})")
    return lines


def classify(base: list[Suite], cells: list[Suite]) -> ReportChanges:
    """The revision's reports as new, preexisting or intermittent, and the baseline's it
    no longer shows where both ran the same test at the same vCPU count."""
    known = signatures(base)
    changes = ReportChanges()
    seen = _seen(cells)
    for sig, s in seen.items():
        if sig in known:
            changes.preexisting.append(s)
        elif s.boots_seen < s.boots_run:
            changes.intermittent.append(s)
        else:
            changes.new.append(s)
    ran = {(s.vcpus, c.name) for s in cells for c in s.cases if _checked(s, c)}
    for sig, s in _seen(base).items():
        both = [c for c in s.cells if _cell_key(c) in ran]
        if sig not in seen and both:
            changes.fixed.append(s)
    return changes


def _checked(suite: Suite, case: Case) -> bool:
    """The case ran with lockdep on throughout: a report it lacks was not missed because
    lockdep had switched itself off (at boot, for the boot case: then no test starts with
    it on)."""
    if case.status == Status.SKIP:
        return False
    if case.name == "boot":
        return all(c.properties.get("debug_locks_start") == "1" for c in suite.cases
                   if c.name != "boot")
    return case.properties.get("debug_locks_end") == "1"


def _seen(cells: list[Suite]) -> dict[str, Seen]:
    """Each signature, where it showed, and in how many of the boots that could show it.

    A cell's test cases count their own boots, and its boot case every boot of the
    cell: a report at boot is in both, so then the boot case's count stands for all.
    """
    out: dict[str, Seen] = {}
    for s in cells:
        at_boot: dict[str, tuple[int, int]] = {}  # signature -> (seen, run), boot case
        in_tests: dict[str, tuple[int, int]] = {}  # summed over the test cases
        for c in s.cases:
            for sig in dict.fromkeys(r.signature for r in c.reports if r.type != LOCKDEP_OFF):
                r = next(r for r in c.reports if r.signature == sig)
                one = out.setdefault(sig, Seen(sig, r.title, r.type, [], 0, 0))
                one.cells.append(f"vcpus_{s.vcpus}/{c.name}")
                where = at_boot if c.name == "boot" else in_tests
                seen, run = where.get(sig, (0, 0))
                where[sig] = (seen + c.boots_seen.get(sig, 1), run + c.boots_run)
        for sig in {*at_boot, *in_tests}:
            tests_seen, tests_run = in_tests.get(sig, (0, 0))
            boot_seen, boot_run = at_boot.get(sig, (0, tests_run))
            out[sig].boots_seen += max(boot_seen, tests_seen)
            out[sig].boots_run += boot_run
    return out


def _cell_key(label: str) -> tuple[int, str]:
    vcpus, _, name = label.partition("/")
    return int(vcpus.removeprefix("vcpus_")), name


def reference(path: Path) -> Run:
    """An earlier run's results, to take the baseline from; it must hold one."""
    run = Run.load(path / "results.json")
    if not baseline_suites(run):
        raise UserError(f"--baseline-results {path}: that run has no baseline cells "
                        f"(its revisions: {', '.join(_revisions(run)) or 'none'})")
    return run


# What must be equal for an earlier run's baseline to stand for this run's.
SAME = {"base_commit": "base commit", "kconfig_inputs": "kernel config (base and fragments)",
        "accel": "accelerator"}


def check_reference(ref: Run, run: Run, path: Path) -> None:
    """Refuse a baseline from a run of another base, config or accelerator: its reports
    would be judged against a different kernel."""
    for key, what in SAME.items():
        theirs, ours = ref.properties.get(key, ""), run.properties.get(key, "")
        if theirs != ours:
            raise UserError(f"--baseline-results {path}: its {what} is "
                            f"{theirs or '(not recorded)'}, this run's is {ours}")


def _revisions(run: Run) -> list[str]:
    return list(dict.fromkeys(s.revision for s in run.suites))
