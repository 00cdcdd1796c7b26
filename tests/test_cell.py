"""Verdicts of a cell from real consoles that kpv's guests printed."""

from pathlib import Path

from pipeline import console, markers, sanitize, vm
from pipeline.guest import GuestTest
from pipeline.results import Status
from pipeline.run import cell

DATA = Path(__file__).parent / "data" / "console"


def boot_of(name: str, done: bool = True, problem: str = "") -> tuple[vm.Boot, list]:
    raw = (DATA / name).read_bytes()
    text = sanitize.clean(raw)
    reports = console.attribute(console.parse(text), markers.parse(text))
    b = vm.Boot("tcg", "qemu-system-x86_64 ...", raw, b"@@kpv boot" in raw, 3.0, done, 0,
                False, problem)
    return b, reports


def verdict(name: str, test: str) -> tuple:
    b, reports = boot_of(name)
    text = sanitize.clean(b.log)
    t = GuestTest(test, (f"/stress/{test}",), 80)
    case = cell.test_case(t, b, markers.parse(text), [r for r in reports if r.test == test])
    return case, cell.boot_case([(b, reports)])


def test_clean_fork_passes_with_its_timings():
    case, boot = verdict("baseline-6.1-fork-test-clean.log", "fork")
    assert case.status == Status.PASS, case.message
    assert case.time == 20.99
    assert float(case.properties["ops_per_s"]) > 0
    assert case.properties["debug_locks_start"] == case.properties["debug_locks_end"] == "1"
    assert boot.status == Status.PASS


def test_v1_boot_fails_and_the_fork_test_fails_with_the_same_bug():
    case, boot = verdict("v1-6.1-fork-test-lockdep-off.log", "fork")
    assert (boot.status, boot.kind) == (Status.FAIL, "sleep-in-atomic")
    assert boot.message == ("sleeping function called from invalid context in expand_downwards "
                            "(and 1 more)")
    # The fork test hit the bug again: a failure, not a skip for lockdep being off.
    assert (case.status, case.kind) == (Status.FAIL, "sleep-in-atomic")
    assert case.message == "sleeping function called from invalid context in expand_downwards"


def test_hung_test_killed_by_init_fails_with_its_reports():
    case, _ = verdict("v1-6.1-stack-test-hang-interleaved.log", "stack")
    assert case.status == Status.FAIL
    assert case.properties["exit_status"] == "143"
    # Dozens of identical splats collapse to the distinct ones.
    assert len(case.reports) < int(case.properties["reports"])


def test_missing_end_marker_is_a_runner_error():
    b, _ = boot_of("baseline-6.1-fork-test-clean.log")
    cut = b.log[: b.log.index(b"@@kpv end")]
    text = sanitize.clean(cut)
    t = GuestTest("fork", ("/stress/fork",), 80)
    case = cell.test_case(t, vm.Boot("tcg", "", cut, True, 3.0, False, None, True,
                                     "test timed out after 110 s"),
                          markers.parse(text), [])
    assert case.status == Status.ERROR and case.message == "test timed out after 110 s"


def test_boot_that_never_reached_init_is_an_error():
    b = vm.Boot("tcg", "", b"", False, 0.0, False, None, True,
                "boot timed out after 120 s with no console output")
    case = cell.boot_case([(b, [])])
    assert case.status == Status.ERROR and "no console output" in case.message


def test_late_report_in_a_one_test_boot_belongs_to_the_test():
    # The soft lockup prints after "@@kpv done": the stack test's children caused it.
    b, _ = boot_of("v1-6.1-stack-test-hang-interleaved.log")
    text = sanitize.clean(b.log)
    marks = markers.parse(text)
    reports = cell.own_test("stack", console.attribute(console.parse(text), marks), marks)
    lockups = [r for r in reports if r.type == "soft-lockup"]
    assert lockups and all(r.test == "stack" for r in lockups)
    start = next(m.line for m in marks if m.kind == "start")
    assert all(r.test is None for r in reports if r.first_line < start)


def test_fork_whose_start_marker_a_kernel_line_cut_still_passes():
    case, boot = verdict("baseline-6.1-five-boots-marker-cut.log", "fork")
    assert case.status == Status.PASS, case.message
    assert case.properties["debug_locks_start"] == "1"
    assert boot.status == Status.PASS


def test_lockdep_on_at_the_end_was_on_at_the_start():
    # debug_locks never comes back on: a start marker that lost its value is
    # vouched for by the end marker; one that says 0 is believed.
    b, _ = boot_of("baseline-6.1-fork-test-clean.log")
    t = GuestTest("fork", ("/stress/fork",), 80)
    for start, end, status, message in (
            ("", "1", Status.PASS, ""),
            ("", "0", Status.SKIP, "lockdep's state was not on the console (debug_locks=?)"),
            (" debug_locks=0", "1", Status.SKIP, "lockdep was off (debug_locks=0)"),
            (" debug_locks=na", "na", Status.SKIP, "the kernel has no lockdep")):
        text = sanitize.clean(b.log).replace("@@kpv start fork debug_locks=1",
                                             f"@@kpv start fork{start}")
        text = text.replace("elapsed_ms=20990 debug_locks=1", f"elapsed_ms=20990 debug_locks={end}")
        case = cell.test_case(t, b, markers.parse(text), [])
        assert case.status == status, (start, end, case.message)
        assert message in case.message
