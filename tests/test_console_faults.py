"""console.parse on the seeded-bug corpus: one kernel bug per boot, captured by kpv.

tests/data/console/faults-6.1-ten-boots-seeded-bugs.log is a cell's
console.log from `kpv run --series patches/faults` (see the README there):
ten boots, each running one fault-<name> test that writes <name> to
/proc/kpv_fault. Its .expected.json was written from the log by hand;
test_console.test_golden compares the whole list, this module compares it
test by test, so that a failure names the fault whose report went wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import console, markers, symbols

LOG = Path(__file__).parent / "data" / "console" / "faults-6.1-ten-boots-seeded-bugs.log"
TEXT = LOG.read_bytes().decode("utf-8", errors="replace")
EXPECTED = json.loads(LOG.with_name(f"{LOG.stem}.expected.json").read_text())
REPORTS = console.attribute(console.parse(TEXT), markers.parse(TEXT))

FAULTS = ("recursive-lock", "bad-unlock", "sleep-in-atomic", "warn", "bug-on", "null-deref",
          "rcu-misuse", "hung-task", "held-lock-at-return", "inconsistent-lock-state")

def _summary(r: console.Report) -> dict:
    return {"type": r.type, "title": r.title, "locks": r.locks, "test": r.test,
            "corrupted": r.corrupted}


@pytest.mark.parametrize("test", [f"fault-{f}" for f in FAULTS])
def test_each_fault_gives_its_reports(test: str) -> None:
    assert [_summary(r) for r in REPORTS if r.test == test] == \
        [e for e in EXPECTED if e["test"] == test]


def test_every_boot_is_clean_and_every_fault_fired() -> None:
    assert all(e["test"] for e in EXPECTED)
    assert {e["test"] for e in EXPECTED} == {f"fault-{f}" for f in FAULTS}
    assert [r.test for r in REPORTS if r.test is None] == []
    assert TEXT.count("Linux version ") == len(FAULTS)


def test_types_and_titles_whatever_the_details() -> None:
    # What a dashboard shows, known problems aside: one row per fault.
    got = [(r.test, r.type) for r in REPORTS]
    assert got == [(e["test"], e["type"]) for e in EXPECTED]


def test_a_hung_task_reported_five_times_is_one_problem() -> None:
    hung = [r for r in REPORTS if r.type == "hung-task"]
    assert len(hung) == 5 and len({r.signature for r in hung}) == 1
    assert len({r.signature for r in REPORTS}) == len(FAULTS)


def test_oops_reports_keep_their_bug_line_and_end_marker() -> None:
    bug = next(r for r in REPORTS if r.test == "fault-bug-on")
    lines = bug.text.split("\n")
    assert lines[0].endswith("------------[ cut here ]------------")
    assert "kernel BUG at kernel/kpv_fault.c:74!" in lines[1]
    assert "invalid opcode: 0000 [#1] SMP" in lines[2]  # `inside`: not a report of its own
    assert lines[-1].endswith("---[ end trace 0000000000000000 ]---")
    oops = next(r for r in REPORTS if r.test == "fault-null-deref")
    assert "Oops: 0002 [#1] SMP" in oops.text and not oops.corrupted


def test_softirq_report_is_the_cpus_and_attributed_to_the_running_test() -> None:
    # Printed in a timer on CPU 0 ([C0], the idle task), while the test's
    # writer ([T63]) waits: the test running is still the one that did it.
    r = next(r for r in REPORTS if r.type == "lockdep-inconsistent")
    assert "[    C0]" in TEXT.split("\n")[r.first_line]
    assert r.test == "fault-inconsistent-lock-state"
    assert r.frames.index("kpv_timer_fn") < r.frames.index("run_timer_softirq")


def test_lockdep_state_at_each_tests_end() -> None:
    # Lockdep turns itself off after its own reports and after an oops; a
    # WARN, a might_sleep report, RCU's lockdep check and a hung task leave it on.
    ends = {m.test: m.fields.get("debug_locks") for m in markers.parse(TEXT) if m.kind == "end"}
    off = {"recursive-lock", "bad-unlock", "bug-on", "null-deref", "held-lock-at-return",
           "inconsistent-lock-state"}
    assert ends == {f"fault-{f}": "0" if f in off else "1" for f in FAULTS}


def test_report_frames_as_symbols_reads_them() -> None:
    r = next(r for r in REPORTS if r.test == "fault-null-deref")
    frames = symbols.frames_in(r.text)
    assert frames[0].text == "kpv_null_deref+0x7/0xe" and frames[0].exact
    assert [f.text for f in frames if not f.exact][:2] == ["kpv_fault_write+0x84/0xa8",
                                                          "proc_reg_write+0x63/0x77"]


def test_the_guest_test_that_captured_the_corpus() -> None:
    from pipeline import guest

    warn = guest.stress_test("fault-warn", 5, 1)
    assert warn.argv == ("/bin/busybox", "sh", "-c", "echo warn > /proc/kpv_fault; sleep 2")
    # The writer sleeps 30 s in D state: the hung-task timeout must be well below.
    hung = guest.stress_test("fault-hung-task", 5, 1).argv[-1]
    assert hung.startswith("echo 5 > /proc/sys/kernel/hung_task_timeout_secs; ")
    assert guest.test_needs("fault-warn") == (0, 1)
    with pytest.raises(guest.UserError):
        guest.stress_test("fault-x;reboot", 5, 1)


def test_a_dump_that_never_closes_gives_back_only_what_it_took() -> None:
    # Without its lock list, closing `=====` and the next report's header, the
    # first hung-task report reads on into the next one's lines; giving them
    # back, it keeps its own trace whole (blank lines after `</TASK>` were
    # counted, never taken).
    lines = TEXT.split("\n")
    first, second = [r for r in REPORTS if r.type == "hung-task"][:2]
    show = next(k for k in range(first.first_line, first.last_line)
                if "Showing all locks held in the system:" in lines[k])
    cut = [*lines[:show], *lines[first.last_line + 1:second.first_line],
           *lines[second.first_line + 1:]]
    got = next(r for r in console.parse("\n".join(cut)) if r.type == "hung-task")
    assert got.text.split("\n")[-1].rstrip().endswith("</TASK>")
    assert got.title == first.title
