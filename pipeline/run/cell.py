"""One cell of the matrix: a kernel at one vCPU count, a fresh boot per test.

Each boot's console is analysed on its own; its reports are attributed to the
boot or to the test by init's markers. The result is a Suite: a `boot` case
(did every boot reach init cleanly) and one case per test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import analysis, endings, markers, reach, reproduce, sanitize, symbols, timings, vm
from pipeline.console import Report
from pipeline.guest import GuestTest
from pipeline.logtext import Cleaned
from pipeline.results import Case, Status, Suite

_EXIT_TIMEOUT = (124, 143)  # busybox timeout's own status, and SIGTERM's
# "lockdep is turned off" and friends say a test was not checked; they are not a bug found.
LOCKDEP_OFF = "lockdep-off"


@dataclass(frozen=True)
class CellSpec:
    revision: str
    vcpus: int
    kernel: Path
    vmlinux: Path | None  # for file:line in reports; None leaves frames as printed
    initrd: Path
    memory_mb: int
    numa_nodes: int
    accel: str
    boot_timeout: float
    test_slack: float


@dataclass(frozen=True)
class Judging:
    """How a cell's reports are judged against the baseline. The default judges as if
    there were none: every report fails its case, and none is confirmed."""

    baseline: frozenset[str] = frozenset()  # report signatures the baseline showed
    gate_new: bool = False  # a report the baseline showed does not fail a case
    confirm: int = 0  # boots more of a test that showed a report the baseline did not
    fail_intermittent: bool = True  # such a report seen in only some of them still fails


def suite_name(revision: str, vcpus: int | None = None) -> str:
    name = f"kpv.{sanitize.junit_name(revision)}"
    return name if vcpus is None else f"{name}.vcpus_{vcpus}"


def run(spec: CellSpec, tests: list[GuestTest], out: Path, cell_dir: str,
        progress: Callable[[str], None],
        checkpoint: Callable[[Suite], None] = lambda suite: None,
        judging: Judging = Judging()) -> Suite:
    """Boot once per test; out/cell_dir/console.log gets every boot's raw bytes, in order.

    A test that shows a report the baseline did not is booted judging.confirm
    times more: the case then says in how many of its boots each report showed.
    checkpoint gets the suite as it stands after each test, so that what
    finished is written before the next boot (an interruption keeps it).
    """
    (out / cell_dir).mkdir(parents=True, exist_ok=True)
    reproduce.write(vm.Machine(spec.kernel, spec.initrd, spec.vcpus, spec.memory_mb,
                               spec.numa_nodes, spec.accel, ""),
                    spec.revision, [t.name for t in tests], out / cell_dir)
    boots: list[tuple[vm.Boot, list[Report]]] = []
    cases: list[Case] = []
    accel, symbols_why = spec.accel, ""
    with open(out / cell_dir / "console.log", "wb") as log:

        def boot(t: GuestTest) -> tuple[vm.Boot, list[Report], list[markers.Marker]]:
            nonlocal accel, symbols_why
            machine = vm.Machine(spec.kernel, spec.initrd, spec.vcpus, spec.memory_mb,
                                 spec.numa_nodes, accel, f"kpv.test={t.name}")
            b = vm.boot_or_fallback(machine, log, spec.boot_timeout,
                                    t.budget + spec.test_slack)
            if b.fallback:
                progress(f"{spec.revision} vcpus={spec.vcpus}: {b.fallback}")
                accel = "tcg"  # once KVM failed here, it will fail for later boots
            seen = analysis.analyse(Cleaned.of_bytes(b.log), qemu_exited=b.qemu_exited,
                                    note=b.problem)
            found = seen.reports
            if b.qemu_exited is None:
                # A signal kpv did not send stopped QEMU (the OOM killer, a stray
                # kill): the console stopping is the host's doing, not the kernel's.
                found = [r for r in found if r.type != endings.STOPPED]
            reports, why = _decoded(own_test(t.name, found, seen.markers), spec.vmlinux)
            symbols_why = symbols_why or why
            boots.append((b, reports))
            return b, reports, seen.markers

        confirmed = set(judging.baseline)  # signatures that need no more boots in this cell
        for t in tests:
            progress(f"{spec.revision} vcpus={spec.vcpus} {t.name}")
            b, reports, marks = boot(t)
            per_boot = [[r for r in reports if r.test == t.name]]
            # Once per signature and cell: a report at boot shows in every later boot of the
            # cell anyway (the boot case counts them all), and the confirming boots are slow.
            unknown = _unknown(reports, confirmed)
            confirmed.update(r.signature for r in reports)
            for i in range(judging.confirm if unknown else 0):
                progress(f"{spec.revision} vcpus={spec.vcpus} {t.name}: a report the baseline "
                         f"did not show; confirming, boot {i + 2} of {judging.confirm + 1}")
                per_boot.append([r for r in boot(t)[1] if r.test == t.name])
            cases.append(confirmed_case(t, b, marks, per_boot, judging))
            suite = _suite(spec, cell_dir, boots, cases, symbols_why, judging)
            checkpoint(suite)
    return suite


def _unknown(reports: list[Report], known: set[str]) -> bool:
    return any(r.signature not in known for r in reports if r.type != LOCKDEP_OFF)


def confirmed_case(t: GuestTest, b: vm.Boot, marks: list[markers.Marker],
                   per_boot: list[list[Report]], judging: Judging) -> Case:
    """The test's case from its first boot's markers and every boot's reports."""
    seen: dict[str, int] = {}
    for reports in per_boot:
        for sig in {r.signature for r in reports if r.type != LOCKDEP_OFF}:
            seen[sig] = seen.get(sig, 0) + 1
    tolerated = _tolerated(judging, seen.keys())
    if not judging.fail_intermittent:
        tolerated.update({s: "intermittent" for s, n in seen.items()
                          if n < len(per_boot) and s not in tolerated})
    case = test_case(t, b, marks, [r for reports in per_boot for r in reports], tolerated)
    case.boots_run, case.boots_seen = len(per_boot), seen
    return case


def _tolerated(judging: Judging, signatures) -> dict[str, str]:
    """Signatures that do not fail a case, and why."""
    if not judging.gate_new:
        return {}
    return {s: "preexisting" for s in signatures if s in judging.baseline}


def _suite(spec: CellSpec, cell_dir: str, boots: list[tuple[vm.Boot, list[Report]]],
           cases: list[Case], symbols_why: str, judging: Judging) -> Suite:
    """The cell's suite from the boots and test cases so far."""
    suite = Suite(suite_name(spec.revision, spec.vcpus), spec.revision, spec.vcpus,
                  {"vcpus": str(spec.vcpus), "numa_nodes": str(spec.numa_nodes)})
    if symbols_why:  # once per cell: it is the kernel's, not the boot's
        suite.properties["symbols"] = symbols_why
    suite.properties.update({"accel": boots[-1][0].accel, "qemu_command": boots[-1][0].command,
                             "reproduce": f"{cell_dir}/{reproduce.NAME}"})
    fallback = next((b.fallback for b, _ in boots if b.fallback), "")
    if fallback:
        suite.properties["accel_fallback"] = fallback
    suite.cases = [boot_case(boots, judging),
                   *(replace(c, artifacts=list(c.artifacts)) for c in cases)]
    for c in suite.cases:
        c.artifacts.append(f"{cell_dir}/console.log")
    return suite


def _decoded(reports: list[Report], vmlinux: Path | None) -> tuple[list[Report], str]:
    """The reports with file:line after each frame, from one addr2line run for them
    all; and why there is none, when no frame got one."""
    frames = [f for r in reports for f in symbols.frames_in(r.text)]
    if not frames:
        return reports, ""
    syms = symbols.resolve(vmlinux, frames)
    why = "" if syms.lines else f"no file:line in reports: {syms.reason}"
    return [replace(r, text=symbols.annotate(r.text, syms)) for r in reports], why


def own_test(name: str, reports: list[Report], marks: list[markers.Marker]) -> list[Report]:
    """This boot ran only `name`: what the kernel says after the test started is the test's,
    even once init has printed the test's end (a wedged child, a late lockup)."""
    start = next((m.line for m in marks if m.kind == "start" and m.test == name), None)
    if start is None:
        return reports
    return [replace(r, test=name) if r.test is None and r.first_line > start else r
            for r in reports]


def boot_case(boots: list[tuple[vm.Boot, list[Report]]], judging: Judging = Judging()) -> Case:
    """The boots themselves: each must reach init, with no report outside a test."""
    case = Case("boot", time=sum(b.boot_time for b, _ in boots) / len(boots))
    at_boot = [r for _, reports in boots for r in reports
               if r.test is None and r.type != LOCKDEP_OFF]
    tolerated = _tolerated(judging, {r.signature for r in at_boot})
    failing = _judge(case, at_boot, tolerated)
    case.boots_run = len(boots)
    for sig in {r.signature for r in at_boot}:
        case.boots_seen[sig] = sum(any(r.test is None and r.signature == sig for r in reports)
                                   for _, reports in boots)
    failed = [b for b, _ in boots if not b.booted]
    if failed and not failing:
        case.status, case.kind = Status.ERROR, "boot-error"
        case.message = failed[0].problem
        case.text = sanitize.bound(failed[0].log, 16384)
    case.properties["boots"] = str(len(boots))
    return case


def test_case(t: GuestTest, b: vm.Boot, marks: list[markers.Marker],
              reports: list[Report], tolerated: dict[str, str] | None = None) -> Case:
    """A test's verdict: kernel reports fail it, but for the tolerated (signature ->
    why: the baseline shows it too); a runner problem is an error."""
    case = Case(t.name)
    start = next((m for m in marks if m.kind == "start" and m.test == t.name), None)
    end = next((m for m in marks if m.kind == "end" and m.test == t.name), None)
    results = [m.fields for m in marks if m.kind == "result" and m.test == t.name]
    for fields in results:
        case.properties.update(fields)
    case.properties.update(timings.summarize(results))  # rates per kind; repeats' median
    boot = next((m for m in marks if m.kind == "boot"), None)
    if boot:  # the guest as init set it up: CPUs, nodes, THP, KSM, compaction
        case.properties.update({f"guest_{k}": v for k, v in boot.fields.items()
                                if k != "debug_locks"})
    if start:
        case.properties["debug_locks_start"] = start.fields.get("debug_locks", "?")
    if end:
        case.properties["debug_locks_end"] = end.fields.get("debug_locks", "?")
        case.properties["exit_status"] = end.fields.get("status", "?")
        case.time = int(end.fields.get("elapsed_ms", "0")) / 1000
    off = [r for r in reports if r.type == LOCKDEP_OFF]
    if off:
        case.properties["lockdep_off"] = off[0].title
    reports = [r for r in reports if r.type != LOCKDEP_OFF]
    if _judge(case, reports, tolerated or {}):
        return case  # the kernel's fault names the case; what else went wrong follows it
    if end is None:
        case.status, case.kind = Status.ERROR, "runner-error"
        case.message = b.problem or f"no end marker for {t.name} in the console"
    elif (status := end.fields.get("status")) != "0":
        case.status = Status.FAIL
        case.kind = "timeout" if status in map(str, _EXIT_TIMEOUT) else "test-failed"
        case.message = f"{t.name} exited with status {status}"
    elif problem := reach.check(t.name, results):
        # A pass would say the path was checked; it never ran.
        case.status, case.kind = Status.ERROR, "not-reached"
        case.message = f"{t.name} did not reach its path: {problem}"
    elif not _lockdep_on_at_start(case.properties) or off:
        # A pass here would claim lockdep checked this test; it did not.
        case.status, case.kind = Status.SKIP, "lockdep-off"
        why = off[0].title if off else _lockdep_state(case.properties.get("debug_locks_start"))
        case.message = f"{t.name} ran, but {why}: locking not checked"
    return case


def _lockdep_on_at_start(properties: dict[str, str]) -> bool:
    # debug_locks never comes back on, so on at the end means on at the start:
    # that stands in for a start marker whose value the console lost.
    start = properties.get("debug_locks_start")
    return start == "1" or (start != "0" and properties.get("debug_locks_end") == "1")


def _lockdep_state(start: str | None) -> str:
    if start == "0":
        return "lockdep was off (debug_locks=0)"
    if start == "na":
        return "the kernel has no lockdep (no /proc/lockdep_stats)"
    return f"lockdep's state was not on the console (debug_locks={start or '?'})"


def _judge(case: Case, reports: list[Report], tolerated: dict[str, str]) -> bool:
    """Fail the case for its reports but the tolerated ones, which it carries all the
    same (and names, by why, in a property); whether it failed."""
    failing = [r for r in reports if r.signature not in tolerated]
    if failing:
        _fail(case, failing)
    kept = _distinct([r for r in reports if r.signature in tolerated])
    case.reports += kept
    for why in sorted({tolerated[r.signature] for r in kept}):
        case.properties[f"{why}_reports"] = "; ".join(
            sorted({r.signature for r in kept if tolerated[r.signature] == why}))
    if reports:
        case.properties["reports"] = str(len(reports))
    return bool(failing)


def _fail(case: Case, reports: list[Report]) -> None:
    """One failure per case: the first report names it; each distinct report is kept once."""
    shown = _distinct(reports)
    case.status, case.kind = Status.FAIL, shown[0].type
    more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
    case.message = shown[0].title + more
    case.text = "\n\n".join(r.text for r in shown)
    case.reports = shown


def _distinct(reports: list[Report]) -> list[Report]:
    """Each distinct report once."""
    distinct: dict[str, Report] = {}
    for r in reports:
        key = r.signature or f"{r.type}:{r.title}"
        if key not in distinct or (distinct[key].corrupted and not r.corrupted):
            distinct[key] = r  # the first copy, unless a later one is intact
    # A copy without a stack of a kind already shown intact (a hung task caught
    # while running) says nothing new; a corrupted report with a stack of its
    # own may be another problem, and stays.
    intact = {r.type for r in distinct.values() if not r.corrupted}
    return [r for r in distinct.values()
            if not (r.corrupted and not r.frames and r.type in intact)]
