"""Reports judged against the baseline: the gate, the classification, the exit code, JUnit
and results.json; on consoles kpv's guests printed (tests/data/console)."""

import json
import re
from pathlib import Path

import pytest
from junitparser import JUnitXml

from pipeline import console, markers, sanitize, vm
from pipeline.guest import GuestTest
from pipeline.report import junit
from pipeline.results import Run, Status, Suite
from pipeline.run import cell, verdict

from .test_junit import schema  # noqa: F401 (a fixture)

DATA = Path(__file__).parent / "data" / "console"
# Four boots (idle, migrate, mmap, stack) of the forkmigration canary's cell at 2 vCPUs:
# the canary's circular report in migrate, mmap and stack.
CANARY = "canary-6.1-forkmigration-vcpus-2-four-boots.log"
CANARY_SIG = "lockdep-circular: &anon_vma->rwsem kpv_canary_forkmigration"


def boots(name: str) -> list[bytes]:
    """A cell's console.log cut into its boots, at each kernel's first line."""
    raw = (DATA / name).read_bytes()
    starts = [m.start() for m in re.finditer(rb"^\[ +0\.000000\]\[ +T0\] Linux version",
                                             raw, re.M)]
    if not starts:  # a boot of its own, from before the kernel's first line
        return [raw]
    return [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]


def boot_of(raw: bytes) -> tuple[vm.Boot, list, list]:
    text = sanitize.clean(raw)
    marks = markers.parse(text)
    reports = console.attribute(console.parse(text), marks)
    return vm.Boot("tcg", "qemu-system-x86_64 ...", raw, True, 3.0, True, 0, False, ""), \
        reports, marks


def case_of(raw: bytes, test: str, judging: cell.Judging | None = None):
    """The test's case from one boot, judged."""
    b, reports, marks = boot_of(raw)
    t = GuestTest(test, (f"/stress/{test}",), 80)
    return cell.confirmed_case(t, b, marks, [[r for r in reports if r.test == test]],
                               judging or cell.Judging())


def cell_suite(rev: str, vcpus: int, cases) -> Suite:
    return Suite(cell.suite_name(rev, vcpus), rev, vcpus, cases=list(cases))


def test_a_report_the_baseline_shows_fails_only_under_gate_any():
    migrate = boots(CANARY)[1]
    failed = case_of(migrate, "migrate", cell.Judging(frozenset({CANARY_SIG}), gate_new=False))
    assert (failed.status, failed.kind) == (Status.FAIL, "lockdep-circular")
    passed = case_of(migrate, "migrate", cell.Judging(frozenset({CANARY_SIG}), gate_new=True))
    assert passed.status == Status.PASS, passed.message
    # Not hidden: the case still carries the report, and names it as preexisting.
    assert [r.signature for r in passed.reports] == [CANARY_SIG]
    assert passed.properties["preexisting_reports"] == CANARY_SIG


def test_a_new_report_still_fails_under_gate_new():
    case = case_of(boots(CANARY)[1], "migrate", cell.Judging(frozenset({"other: x"}), True))
    assert case.status == Status.FAIL and "preexisting_reports" not in case.properties


def test_confirmation_boots_are_counted_per_signature():
    b, reports, marks = boot_of(boots(CANARY)[1])
    found = [r for r in reports if r.test == "migrate"]
    t = GuestTest("migrate", ("/stress/migrate",), 80)
    every = cell.confirmed_case(t, b, marks, [found, found, found], cell.Judging())
    assert (every.boots_run, every.boots_seen) == (3, {CANARY_SIG: 3})
    once = cell.confirmed_case(t, b, marks, [found, [], []], cell.Judging())
    assert once.boots_seen == {CANARY_SIG: 1} and once.status == Status.FAIL
    tolerant = cell.confirmed_case(t, b, marks, [found, [], []],
                                   cell.Judging(fail_intermittent=False))
    assert tolerant.status == Status.PASS
    assert tolerant.properties["intermittent_reports"] == CANARY_SIG


def _canary_cells(rev: str, judging: cell.Judging | None = None) -> Suite:
    tests = ("idle", "migrate", "mmap", "stack")
    return cell_suite(rev, 2, [case_of(raw, t, judging)
                               for raw, t in zip(boots(CANARY), tests, strict=True)])


def test_classification_new_preexisting_fixed_intermittent():
    base = [_canary_cells("baseline")]
    same = verdict.classify(base, [_canary_cells("v3")])
    assert [s.signature for s in same.preexisting] == [CANARY_SIG]
    assert same.preexisting[0].cells == ["vcpus_2/migrate", "vcpus_2/mmap", "vcpus_2/stack"]
    assert (same.new, same.fixed, same.intermittent) == ([], [], [])
    # At 4 vCPUs the canary base fails migrate, mmap and stack; plain 6.1 (a revision
    # taking the canary out) ran all three clean with lockdep on: fixed, each of them.
    four = ("canary-6.1-forkmigration-vcpus-4-four-boots.log",
            ("idle", "migrate", "mmap", "stack"))
    canary4 = cell_suite("baseline", 4, [case_of(raw, t) for raw, t in
                                         zip(boots(four[0]), four[1], strict=True)])
    plain = zip(boots("baseline-6.1-five-boots-marker-cut.log"),
                ("fork", "stack", "mmap", "migrate", "race"), strict=True)
    reverted = cell_suite("v9", 4, [case_of(raw, t) for raw, t in plain])
    assert all(c.status == Status.PASS for c in reverted.cases), [c.message for c in
                                                                 reverted.cases]
    fixed = verdict.classify([canary4], [reverted])
    assert [(s.signature, s.cells) for s in fixed.fixed] == [
        (CANARY_SIG, ["vcpus_4/migrate", "vcpus_4/mmap", "vcpus_4/stack"])]
    # Where the revision did not run those tests, or not at that vCPU count: not fixed.
    assert verdict.classify(base, [reverted]).fixed == []
    clean = boots("v3-6.1-two-boots-clean.log")[0]
    # The baseline clean, the canary revision's report is new; seen in 1 of 3, intermittent.
    new = verdict.classify([cell_suite("baseline", 2, [case_of(clean, "fork")])],
                           [_canary_cells("canary")])
    assert [(s.signature, s.boots_seen, s.boots_run) for s in new.new] == [(CANARY_SIG, 3, 3)]
    b, reports, marks = boot_of(boots(CANARY)[1])
    t = GuestTest("migrate", ("/stress/migrate",), 80)
    flaky = cell.confirmed_case(t, b, marks, [[r for r in reports if r.test == "migrate"],
                                              [], []], cell.Judging())
    some = verdict.classify([], [cell_suite("v1", 2, [flaky])])
    assert [(s.boots_seen, s.boots_run) for s in some.intermittent] == [(1, 3)]


def _run(gate: str, *suites: Suite) -> Run:
    return Run("anon-vma", "2026-12-03T12:00:00", {"gate": gate}, list(suites))


def test_exit_code_under_gate_new_leaves_the_baselines_own_failures_shown_not_counted():
    base = _canary_cells("baseline")
    v3 = _canary_cells("v3", cell.Judging(verdict.signatures([base]), gate_new=True))
    assert _run("new", base, v3).exit_code() == 0
    assert any(c.status == Status.FAIL for c in base.cases)  # the baseline keeps its failure
    assert _run("any", base, v3).exit_code() == 1
    assert _run("new", base).exit_code() == 1  # the baseline alone is what is tested


def test_comparison_round_trips_through_results_json(tmp_path):
    base = _canary_cells("baseline")
    run = _run("new", base, _canary_cells("v3"))
    run.comparison = verdict.comparisons(run)
    assert run.comparison["v3"].baseline == "this run"
    run.save(tmp_path / "results.json")
    again = Run.load(tmp_path / "results.json")
    assert again.comparison == run.comparison
    data = json.loads((tmp_path / "results.json").read_text())
    shown = data["comparison"]["v3"]["reports"]["preexisting"][0]
    assert set(shown) == {"signature", "title", "type", "cells", "boots_seen", "boots_run"}


def test_results_of_schema_2_read_with_an_empty_comparison(tmp_path):
    run = _run("any", _canary_cells("baseline"))
    data = run.to_dict()
    data["schema_version"] = 2
    del data["comparison"]
    for s in data["suites"]:
        for c in s["cases"]:
            del c["boots_run"], c["boots_seen"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    again = Run.load(tmp_path / "results.json")
    assert again.comparison == {} and all(c.boots_run == 1 for _, c in again.cases())


def test_junit_marks_a_preexisting_report_in_system_out_and_validates(schema):  # noqa: F811
    base = _canary_cells("baseline")
    judged = cell.Judging(verdict.signatures([base]), gate_new=True)
    v3 = cell_suite("v3", 2, [case_of(boots(CANARY)[1], "migrate", judged)])
    xml = junit.render(_run("new", base, v3))
    schema.validate(xml.decode())
    doc = JUnitXml.fromstring(xml)
    (case,) = [c for s in doc for c in s if s.name == "kpv.v3.vcpus_2"]
    assert case.is_passed
    assert "PREEXISTING (the baseline shows it too" in case.system_out
    assert "kpv_canary_forkmigration" in case.system_out
    (failed,) = [c for s in doc for c in s if s.name == "kpv.baseline.vcpus_2"
                 and c.name == "migrate"]
    assert not failed.is_passed  # the baseline's own case keeps its failure


def test_reference_from_another_base_config_or_accelerator_is_refused(tmp_path):
    ref = _run("new", _canary_cells("baseline"))
    ref.properties.update(base_commit="a" * 40, kconfig_inputs="k1", accel="tcg")
    ours = _run("new")
    ours.properties.update(base_commit="a" * 40, kconfig_inputs="k1", accel="tcg")
    verdict.check_reference(ref, ours, tmp_path)
    for key, value in (("base_commit", "b" * 40), ("kconfig_inputs", "k2"), ("accel", "kvm")):
        other = _run("new")
        other.properties.update({**ours.properties, key: value})
        with pytest.raises(Exception, match=f"--baseline-results {tmp_path}: its"):
            verdict.check_reference(ref, other, tmp_path)


def test_a_reference_without_baseline_cells_is_refused(tmp_path):
    _run("new", _canary_cells("v3")).save(tmp_path / "results.json")
    with pytest.raises(Exception, match="has no baseline cells"):
        verdict.reference(tmp_path)


def test_one_canary_gives_one_signature_at_1_2_and_4_vcpus():
    # Addresses, PIDs, timestamps, CPUs and held locks all differ between these boots.
    sigs = [r.signature for n in (1, 2, 4)
            for raw in boots(f"canary-6.1-forkmigration-vcpus-{n}-four-boots.log")
            for r in boot_of(raw)[1]]
    assert len(sigs) == 7 and set(sigs) == {CANARY_SIG}


def test_what_one_sighting_changes_stays_out_of_a_signature():
    # lockdep numbers classes of one name in the order they register (sb_writers#3 in
    # the 1-vCPU boot above); a title may carry a line or an address.
    assert console._stable("lockdep-circular: &type->i_mutex_dir_key#3 sb_writers#12") == \
        "lockdep-circular: &type->i_mutex_dir_key#N sb_writers#N"
    assert console._stable("bug: kernel BUG at mm/rmap.c:1234 0xffffffff81aea620") == \
        "bug: kernel BUG at mm/rmap.c:N ADDR"
    assert console._stable("oops: general protection fault in ext4_fill_super") == \
        "oops: general protection fault in ext4_fill_super"


def test_kpv_compare_text_and_json(tmp_path, capsys):
    from pipeline.cli import main

    clean = boots("v3-6.1-two-boots-clean.log")[0]
    _run("new", cell_suite("baseline", 2, [case_of(clean, "fork")])).save(
        tmp_path / "a" / "results.json")
    _run("new", _canary_cells("canary")).save(tmp_path / "b" / "results.json")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    text = capsys.readouterr().out
    assert f"canary against the baseline of {tmp_path / 'a'}: 1 new, 0 intermittent, " \
           "0 preexisting, 0 fixed" in text
    assert "in 3 of 3 boots: vcpus_2/migrate, vcpus_2/mmap, vcpus_2/stack" in text
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "b"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    # A run against itself (no baseline in it: all of it is the reference): nothing new.
    assert [s["signature"] for s in same["canary"]["reports"]["preexisting"]] == [CANARY_SIG]
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip().endswith("results.json: no such file")


def test_a_report_at_boot_and_in_its_test_counts_its_boot_once():
    # v1 prints sleeping-in-atomic at the boot's first exec and again in the fork test.
    b, reports, marks = boot_of(boots("v1-6.1-fork-test-lockdep-off.log")[0])
    t = GuestTest("fork", ("/stress/fork",), 80)
    fork = cell.confirmed_case(t, b, marks, [[r for r in reports if r.test == "fork"]],
                               cell.Judging())
    one = cell_suite("v1", 2, [cell.boot_case([(b, reports)]), fork])
    sleep = next(s for s in verdict.classify([], [one]).new if s.type == "sleep-in-atomic")
    assert sleep.cells == ["vcpus_2/boot", "vcpus_2/fork"]
    assert (sleep.boots_seen, sleep.boots_run) == (1, 1)


def test_one_canary_gives_one_signature_in_a_kernel_built_from_other_sources():
    # v3 on the canary base: mm_types.h and rmap.c changed, another build, another boot.
    (raw,) = boots("v3-on-canary-6.1-migrate-circular.log")
    assert {r.signature for r in boot_of(raw)[1]} == {CANARY_SIG}
