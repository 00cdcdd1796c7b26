"""Timings against the baseline, on consoles of real runs (tests/data/console/timing-*:
the fork test five times per boot, on 6.1, on v3 and on 6.1 with fork slowed down)."""

from pathlib import Path

from pipeline import console, markers, sanitize, vm
from pipeline.guest import GuestTest
from pipeline.results import Suite
from pipeline.run import cell, timings_compare

DATA = Path(__file__).parent / "data" / "console"


def fork_cell(rev: str, vcpus: int) -> Suite:
    raw = (DATA / f"timing-6.1-{rev}-fork-five-repeats-vcpus-{vcpus}.log").read_bytes()
    text = sanitize.clean(raw)
    marks = markers.parse(text)
    b = vm.Boot("tcg", "qemu-system-x86_64 ...", raw, True, 3.0, True, 0, False, "")
    case = cell.test_case(GuestTest("fork", ("/stress/fork",), 80), b, marks,
                          console.attribute(console.parse(text), marks))
    return Suite(cell.suite_name(rev, vcpus), rev, vcpus, {"accel": "tcg"}, [case])


def test_the_runs_of_a_test_are_its_repeats():
    (case,) = fork_cell("baseline", 2).cases
    assert len(timings_compare.runs(case)) == 5


def test_a_slowed_fork_is_slower_with_the_interval_below_one():
    for n in (2, 4):
        (t,) = timings_compare.compare([fork_cell("baseline", n)], [fork_cell("slowfork", n)])
        assert (t.test, t.vcpus, t.verdict, t.runs, t.baseline_runs) == ("fork", n, "slower",
                                                                         5, 5)
        assert t.ci_high < 1 and t.ratio < 0.6, t


def test_v3_is_not_called_slower():
    for n in (2, 4):
        (t,) = timings_compare.compare([fork_cell("baseline", n)], [fork_cell("v3", n)])
        assert t.verdict != "slower" and t.ci_low <= 1 <= t.ci_high, t


def test_the_interval_is_the_same_for_the_same_runs():
    base, slow = fork_cell("baseline", 2), fork_cell("slowfork", 2)
    first = timings_compare.compare([base], [slow])
    timings_compare._interval.cache_clear()  # resampled again, not remembered
    assert timings_compare.compare([base], [slow]) == first


def test_other_accelerators_and_single_runs_are_not_judged():
    base, slow = fork_cell("baseline", 2), fork_cell("slowfork", 2)
    slow.properties["accel"] = "kvm"
    assert timings_compare.compare([base], [slow]) == []  # TCG rates are not KVM rates
    one = timings_compare.timing("fork", 2, [9000.0], [4500.0], 0.05)
    assert one.verdict == "too noisy" and one.ratio == 0.5
