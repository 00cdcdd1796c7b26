"""The report kinds of a kernel with sanitizers, on a console kpv captured.

tests/data/console/faults-6.1-sanitizers-eighteen-boots.log is the cell
console.log of `kpv run jobs/faults.toml` (lockdep, KASAN, KFENCE, UBSAN,
DEBUG_LIST; 2 vCPUs): eighteen boots, each writing one name to
/proc/kpv_fault. test_console.test_golden compares the whole list with its
.expected.json; this module checks what each new kind must keep.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import analysis, sanitize
from pipeline.results import Case
from pipeline.run import cell

LOG = Path(__file__).parent / "data" / "console" / "faults-6.1-sanitizers-eighteen-boots.log"
TEXT = sanitize.clean(LOG.read_bytes())
LINES = TEXT.split("\n")
REPORTS = analysis.analyse(TEXT).reports


def _one(test: str, type_: str):
    (r,) = [r for r in REPORTS if r.test == f"fault-{test}" and r.type == type_]
    return r


def _bodies(text: str) -> list[str]:
    return [re.sub(r"^\[ *[\d.]+\]\[ *\w+\] ?", "", t) for t in text.split("\n")]


def test_list_corruption_names_the_caller_not_the_check() -> None:
    r = _one("list-corruption", "list-corruption")
    assert r.title == "corrupted list in kpv_list_corruption"
    body = _bodies(r.text)
    assert body[0] == "------------[ cut here ]------------"
    assert body[1].startswith("list_del corruption, ") and "LIST_POISON1" in body[1]
    assert body[2].startswith("WARNING: CPU: 1 PID: 60 at lib/list_debug.c:53")
    assert body[-1] == "---[ end trace 0000000000000000 ]---"


def test_sanitizer_reports_run_from_row_to_row() -> None:
    for test, type_, title in [
        ("ubsan", "ubsan", "UBSAN: array-index-out-of-bounds in kpv_ubsan"),
        ("kasan", "kasan", "KASAN: slab-out-of-bounds Read in kpv_kasan"),
        ("kfence", "kfence", "KFENCE: use-after-free read in kpv_kfence"),
    ]:
        r = _one(test, type_)
        body = _bodies(r.text)
        assert r.title == title and not r.corrupted
        assert re.fullmatch("={20,}", body[0]) and re.fullmatch("={20,}", body[-1]), test
        assert f"kpv_{test}" in r.frames, test


def test_kasan_keeps_allocation_stack_and_memory_dump() -> None:
    body = _bodies(_one("kasan", "kasan").text)
    assert "Read of size 1 at addr ffff888020ddc5d0 by task busybox/60" in body
    assert "Allocated by task 60:" in body
    assert "Memory state around the buggy address:" in body
    # Lockdep turns itself off after the taint; the test is then unchecked.
    assert _one("kasan", "lockdep-off").first_line == _one("kasan", "kasan").last_line + 1


def test_kfence_stack_has_no_call_trace_header() -> None:
    r = _one("kfence", "kfence")
    body = _bodies(r.text)
    assert "Call Trace:" not in body
    assert r.frames[:2] == ["kpv_kfence", "kpv_fault_write"]
    assert "freed by task 61 on cpu 0" in r.text


def test_stall_detected_by_another_cpu_takes_that_cpus_nmi_backtrace() -> None:
    r = _one("rcu-stall", "rcu-stall")
    assert r.title == "rcu detected stall in kpv_rcu_stall"  # not __const_udelay, where it spins
    assert "[    C0] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:" in r.text
    assert "[    C1] NMI backtrace for cpu 1" in r.text
    assert r.frames[:2] == ["__const_udelay", "kpv_rcu_stall"]
    assert LINES[r.last_line].endswith("</TASK>") and not r.corrupted


def test_panic_that_reboots_ends_with_its_boot() -> None:
    r = _one("panic", "panic")
    assert r.title == "kernel panic: kpv_fault: deliberate panic"
    # panic=-1 restarts before `---[ end Kernel panic`: the next boot is not the report's.
    assert _bodies(r.text)[-1] == "Kernel Offset: disabled"
    assert "Linux version" not in r.text and "kpv_fault: reboot" not in r.text
    assert [x.type for x in REPORTS if x.test == "fault-panic"] == ["panic"]


def test_reset_and_freeze_leave_only_their_silence() -> None:
    for test in ("reboot", "freeze"):
        r = _one(test, "console-stopped")
        assert LINES[r.first_line].endswith(f"kpv_fault: {test}")
        assert r.text.split("\n")[-1].endswith(f"kpv_fault: {test}")


def test_a_garbled_repeat_of_a_shown_kind_is_not_another_problem() -> None:
    # The fifth hung-task report caught the task running again: only `?` frames.
    hung = [r for r in REPORTS if r.type == "hung-task"]
    assert [r.corrupted for r in hung] == [False] * 4 + [True]
    case = Case("fault-hung-task")
    cell._judge(case, hung, {})
    assert case.message == "task hung in kpv_hung_task"
    assert len(case.reports) == 1 and case.properties["reports"] == "5"


def test_a_cut_report_with_a_stack_of_its_own_is_kept_beside_an_intact_one() -> None:
    oob = _one("kasan", "kasan")
    null = _one("null-deref", "kasan")
    # The null dereference's report, cut in the middle of its call trace.
    cut = analysis.analyse("\n".join(LINES[:null.first_line + 12])).reports
    (garbled,) = [r for r in cut if r.first_line == null.first_line]
    assert garbled.corrupted and garbled.frames and garbled.title == null.title
    case = Case("fault-kasan")
    cell._judge(case, [oob, garbled], {})
    assert [r.title for r in case.reports] == [oob.title, null.title]
    # A later intact copy of the same problem replaces a garbled first one.
    cell._judge(case, [garbled, oob, null], {})
    assert case.reports == [null, oob]


def test_list_corruption_under_bug_on_data_corruption_is_the_bug_not_its_place() -> None:
    # BUG_ON_DATA_CORRUPTION prints the message, then BUG()'s cut-here and header.
    log = LOG.with_name("faults-6.1-bug-on-data-corruption-two-boots.log")
    (r, warn) = analysis.analyse(sanitize.clean(log.read_bytes())).reports
    assert (r.type, r.title) == ("list-corruption", "corrupted list in kpv_list_corruption")
    body = _bodies(r.text)
    assert body[0].startswith("list_del corruption, ") and "LIST_POISON1" in body[0]
    assert body[1:3] == ["------------[ cut here ]------------",
                         "kernel BUG at lib/list_debug.c:53!"]
    assert warn.title == "WARNING in kpv_warn" and "list_del" not in warn.text
