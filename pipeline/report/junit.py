"""JUnit XML from a Run, valid against the Jenkins xUnit junit-10.xsd.

Layout: <testsuites> holds one <testsuite> per
Suite; each Case is a <testcase classname=<suite> name=<case>>. FAIL is a
<failure>, ERROR an <error>, SKIP a <skipped>. junit-10.xsd forbids
<properties> in a testcase, so a case's properties, its lockdep state and its
artifacts go into the testcase's <system-out>.

Written with junitparser, which can express all of that. Two of its habits
are worked around below: JUnitXml.update_statistics() writes a `skipped`
count on <testsuites> (junit-10.xsd rejects it), and time attributes are
written with repr(), so they are rounded first.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from pipeline import atomic
from pipeline.results import Case, Run, Status, Suite
from pipeline.sanitize import bound, junit_name, one_line

TEXT_LIMIT = 64 * 1024  # bytes per failure body or system-out; the full log is an artifact
MESSAGE_LIMIT = 1024  # bytes per message attribute
PROPERTY_LIMIT = 4096  # bytes per property value; a QEMU command line fits

LOCKDEP_OFF = "lockdep was off for this test: locking was not checked"
LOCKDEP_SWITCHED_OFF = (
    "lockdep switched itself off during this test: locking was checked only until then"
)

# Seconds no real test takes; it keeps repr() of the sum over a suite away from
# the exponent form that SUREFIRE_TIME rejects.
_MAX_SECONDS = 1e9

# A kernel report is the code under test failing; a runner problem (QEMU died,
# timeout, no marker) is an error, so dashboards tell a bad patch from a broken runner.
_PROBLEMS: dict[Status, type[Failure | Error]] = {Status.FAIL: Failure, Status.ERROR: Error}


def render(run: Run, out_dir: Path | None = None) -> bytes:
    """The JUnit document for `run`, as UTF-8 bytes; pure, never touches the disk.

    With `out_dir`, each case artifact (a path relative to it) is linked as
    `[[ATTACHMENT|<absolute path>]]`. Names are mapped to `[A-Za-z0-9_-]`
    between dots and made unique, so (classname, name) never repeats.
    """
    root = JUnitXml(one_line(run.job, MESSAGE_LIMIT))
    timestamp = _timestamp(run.started)
    suite_names: set[str] = set()
    for suite in [*run.suites, *_changes(run)]:
        name = _unique(_dotted(suite.name), suite_names)
        root.add_testsuite(_testsuite(run, suite, name, timestamp, out_dir))
    _set_totals(root)
    buf = io.BytesIO()
    root.write(buf)
    return buf.getvalue()


def _changes(run: Run) -> list[Suite]:
    """Per revision, a suite `kpv.<rev>.changes` of what it changed against the baseline,
    so dashboards show it: `reports` fails for a new report, `lock_order` for a new lock
    dependency against the order the tree documents, `timings` lists the verdicts."""
    out = []
    for rev, c in run.comparison.items():
        ch = c.reports
        reports = Case("reports")
        reports.properties = {"baseline": c.baseline, **{
            k: "; ".join(s.signature for s in v) for k, v in (
                ("new", ch.new), ("intermittent", ch.intermittent),
                ("preexisting", ch.preexisting), ("fixed", ch.fixed)) if v}}
        if c.first_bad_patch:
            f = c.first_bad_patch
            reports.properties["first_bad_patch"] = f"{f.index}/{f.of} {f.subject}"
        if ch.new or ch.intermittent:
            first = (ch.new or ch.intermittent)[0]
            reports.status, reports.kind = Status.FAIL, "new-report"
            reports.message = f"{len(ch.new)} new, {len(ch.intermittent)} intermittent: " \
                              f"{first.title}"
        order = Case("lock_order")
        deps = c.lock_dependencies
        if deps:
            order.properties = {"source": deps.source, **{
                k: "; ".join(f"{e['from']} -> {e['to']}" for e in v) for k, v in (
                    ("new_edges", deps.new_edges),
                    ("against_documented_order", deps.against_documented_order)) if v}}
            if deps.undocumented_classes:
                order.properties["undocumented_classes"] = "; ".join(deps.undocumented_classes)
            bad = [e for e in deps.against_documented_order if e in deps.new_edges]
            if bad:
                order.status, order.kind = Status.FAIL, "lock-order"
                order.message = (f"{bad[0]['from']} held while taking {bad[0]['to']}: "
                                 "against the lock order the tree documents")
        # Shown, never failed: timings under TCG are not a kernel's speed, and no job
        # gates on them yet.
        timings = Case("timings")
        timings.properties = {
            f"{t.test}_vcpus_{t.vcpus}_{t.metric}": f"{t.verdict}: x{t.ratio:.3f} "
            f"[{t.ci_low:.3f}, {t.ci_high:.3f}] ({t.runs} and {t.baseline_runs} runs)"
            for t in c.timings}
        out.append(Suite(f"kpv.{rev}.changes", rev, None, {}, [reports, order, timings]))
    return out


def write(run: Run, out_dir: Path) -> Path:
    """Write out_dir/junit.xml atomically, so a reader never sees half a file."""
    path = out_dir / "junit.xml"
    atomic.write(path, render(run, out_dir))
    return path


def _testsuite(
    run: Run, suite: Suite, name: str, timestamp: str | None, out_dir: Path | None
) -> TestSuite:
    ts = TestSuite(name)
    if timestamp is not None:
        ts.timestamp = timestamp
    # Run-wide facts (base, series, accel) on every suite: dashboards show a
    # suite's properties, not the document's.
    for key, value in {**run.properties, **suite.properties}.items():
        ts.add_property(one_line(key, MESSAGE_LIMIT), one_line(value, PROPERTY_LIMIT))
    case_names: set[str] = set()
    for case in suite.cases:
        ts.append(_testcase(case, name, _unique(_dotted(case.name), case_names), out_dir))
    ts.update_statistics()
    return ts


def _testcase(case: Case, classname: str, name: str, out_dir: Path | None) -> TestCase:
    tc = TestCase(name, classname, _seconds(case.time))
    result = _result(case)
    if result is not None:
        tc.result = result
    out = "\n".join(_system_out_lines(case, out_dir))
    if out:
        tc.system_out = bound(out, TEXT_LIMIT)
    return tc


def _result(case: Case) -> Failure | Error | Skipped | None:
    message = one_line(case.message, MESSAGE_LIMIT)
    if case.status == Status.SKIP:
        skipped = Skipped(message)
        if case.text:
            skipped.text = bound(case.text, TEXT_LIMIT)
        return skipped
    kind = _PROBLEMS.get(case.status)
    if kind is None:
        return None
    problem = kind(message, one_line(case.kind, MESSAGE_LIMIT))
    # The title on the body's first line too: GitLab ignores `message`.
    problem.text = bound("\n".join(part for part in (message, case.text) if part), TEXT_LIMIT)
    return problem


def _system_out_lines(case: Case, out_dir: Path | None) -> Iterator[str]:
    lockdep = _lockdep_note(case.properties)
    if lockdep:
        yield lockdep
    for key, value in case.properties.items():
        yield f"{one_line(key, MESSAGE_LIMIT)}: {one_line(value, PROPERTY_LIMIT)}"
    yield from _tolerated(case)
    if out_dir is not None:
        for artifact in case.artifacts:
            # Jenkins' junit-attachments plugin documents absolute paths.
            path = os.path.abspath(out_dir / artifact)
            yield f"[[ATTACHMENT|{one_line(path, PROPERTY_LIMIT)}]]"


# Reports a case carries without failing for them, by the property naming their signatures.
TOLERATED = {
    "preexisting_reports": "PREEXISTING (the baseline shows it too, so it does not fail "
                           "this case under gate \"new\")",
    "intermittent_reports": "INTERMITTENT (new, but not in every boot; the job does not fail "
                            "a case for it)",
}


def _tolerated(case: Case) -> Iterator[str]:
    """Each report the case did not fail for, marked as such, with its text: never hidden."""
    for key, label in TOLERATED.items():
        names = set(case.properties.get(key, "").split("; ")) - {""}
        for r in case.reports:
            if r.signature in names:
                yield f"{label}: {r.title}\n{r.text}"


def _lockdep_note(properties: dict[str, str]) -> str | None:
    """A line saying what locking a test left unchecked, from the debug_locks
    value of /proc/lockdep_stats read before and after it; None if it all was.

    Lockdep reports once per boot and then switches itself off, so a later
    test passes without having been checked. "na" means the state could not be
    read, which says nothing either way.
    """
    if properties.get("debug_locks_start") == "0":
        return LOCKDEP_OFF
    if properties.get("debug_locks_start") == "1" and properties.get("debug_locks_end") == "0":
        return LOCKDEP_SWITCHED_OFF
    return None


def _set_totals(root: JUnitXml) -> None:
    suites = list(root)
    root.tests = sum(s.tests for s in suites)
    root.failures = sum(s.failures for s in suites)
    root.errors = sum(s.errors for s in suites)
    root.time = round(sum(s.time for s in suites), 3)


def _seconds(t: float) -> float:
    """A time SUREFIRE_TIME accepts: finite, not negative, three decimals at most.

    results.json may be merged from shards or edited by hand; one bad number
    must not make the whole file invalid.
    """
    if not math.isfinite(t) or t < 0:
        return 0.0
    return round(min(t, _MAX_SECONDS), 3)


def _timestamp(started: str) -> str | None:
    """run.started as UTC `YYYY-MM-DDTHH:MM:SS` (Jenkins assumes UTC, wants no
    offset), or None when it does not parse: the attribute is optional."""
    try:
        when = datetime.fromisoformat(started)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _dotted(name: str) -> str:
    """Each dot-separated part mapped to `[A-Za-z0-9_-]`; the dots are Jenkins'
    package/class hierarchy, so they stay."""
    return ".".join(junit_name(part) for part in name.split("."))


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `name_2`, `name_3`... when taken; records the answer in `taken`.

    GitLab keeps only the first of two cases with the same (classname, name),
    and mapping names to a small charset can make two different names equal.
    """
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate
