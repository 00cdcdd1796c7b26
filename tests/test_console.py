"""console.parse and console.attribute: real logs, the format table, properties.

Golden data is tests/data/console/<name>.log, raw as captured, with
<name>.expected.json written by a person reading the log (see the README
there). The property tests cut, shuffle and interleave those same real logs.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import analysis, console, markers, sanitize
from pipeline.markers import Marker

DATA = Path(__file__).parent / "data" / "console"
LOGS = sorted(DATA.glob("*.log"))


def _name(path: Path) -> str:
    return path.stem


@functools.cache
def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _log(name: str) -> str:
    return _text(DATA / f"{name}.log")


def _summary(r: console.Report) -> dict:
    return {"type": r.type, "title": r.title, "locks": r.locks, "test": r.test,
            "corrupted": r.corrupted}


def _reports(text: str) -> list[console.Report]:
    return analysis.analyse(text).reports


# --- golden logs -------------------------------------------------------------


@pytest.mark.parametrize("path", LOGS, ids=_name)
def test_golden(path: Path) -> None:
    expected = json.loads(path.with_name(f"{path.stem}.expected.json").read_text())
    assert [_summary(r) for r in _reports(_text(path))] == expected


def test_every_log_has_its_expectations() -> None:
    logs = {p.stem for p in LOGS}
    expectations = {p.name.removesuffix(".expected.json") for p in DATA.glob("*.expected.json")}
    assert logs == expectations
    assert len(logs) >= 7


@pytest.mark.parametrize("path", LOGS, ids=_name)
def test_sanitized_log_gives_the_same_reports(path: Path) -> None:
    # The pipeline parses sanitize.clean(log), which also breaks lines at a
    # lone \r (numbers differ then); a caller may hand over the raw file.
    raw, clean = _text(path), sanitize.clean(_text(path))
    assert [(_summary(r), r.text) for r in _reports(clean)] == \
        [(_summary(r), r.text) for r in _reports(raw)]


@pytest.mark.parametrize("path", LOGS, ids=_name)
def test_crlf_and_escapes_do_not_matter(path: Path) -> None:
    text = _text(path)
    assert "\r\n" in text
    plain = re.sub(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_c])", "", text.replace("\r\n", "\n"))
    assert [(r.type, r.title, r.first_line, r.text) for r in console.parse(plain)] == \
        [(r.type, r.title, r.first_line, r.text) for r in console.parse(text)]


@pytest.mark.parametrize("path", LOGS, ids=_name)
def test_report_spans(path: Path) -> None:
    """Each report lies within the log, starts where it says, and is found again
    when parsing starts at its first line (syzkaller's re-parse invariant)."""
    lines = _text(path).split("\n")
    reports = console.parse(_text(path))
    assert [r.first_line for r in reports] == sorted(r.first_line for r in reports)
    for r in reports:
        assert 0 <= r.first_line <= r.last_line < len(lines)
        own = r.text.split("\n")
        assert own[0] in sanitize.clean(lines[r.first_line])
        assert own[-1] in sanitize.clean(lines[r.last_line])
        again = console.parse("\n".join(lines[r.first_line:]))[0]
        assert (again.type, again.title, again.text, again.corrupted) == \
            (r.type, r.title, r.text, r.corrupted)


def test_lockdep_report_details() -> None:
    text = _log("v1-6.1-boot-sleep-in-atomic-and-invalid-wait")
    boot, wait = console.parse(text)
    # 0-based, numbered like log.split("\n") and pipeline.markers: grep -n says 229.
    assert boot.first_line == 228
    assert "BUG: sleeping function" in text.split("\n")[boot.first_line]
    assert boot.frames[:6] == ["dump_stack_lvl", "dump_stack", "__might_resched",
                               "__might_sleep", "down_write", "expand_downwards"]
    assert "bprm_execve" in boot.frames and "lock_acquire" not in boot.frames  # `? ` frames
    # Lockdep's banner row belongs to the report; the pr_warn("\n") before it does not.
    assert wait.text.split("\n")[0].endswith("] =============================")
    assert wait.frames[-1] == "ret_from_fork" and not wait.corrupted
    assert wait.chain == []


def test_old_era_circular_report() -> None:
    circular, warn = console.parse(_log("old-2.6.36-circular-and-warn.excerpt"))
    assert circular.chain == ["&(&anon_vma->lock)->rlock", "&(&mm->page_table_lock)->rlock"]
    assert circular.frames[0] == "print_circular_bug"
    assert circular.frames.count("expand_downwards") == 1  # its two `? ` copies are dropped
    assert circular.signature == ("lockdep-circular: &(&anon_vma->lock)->rlock "
                                  "&(&mm->page_table_lock)->rlock")
    # WARN's `[ cut here ]` opens the report; `---[ end trace ]---` closes it.
    assert warn.text.split("\n")[0].endswith("------------[ cut here ]------------")
    assert warn.text.split("\n")[-1].endswith("---[ end trace 4eaa2a86a8e2da22 ]---")


def test_story_circular_report() -> None:
    # v2 with the build fix: the report the series must produce, at boot.
    first, second = console.parse(_log("v2-buildfix-6.1-two-boots-circular"))
    assert first.chain == ["&mm->anon_vma_chain_lock", "&anon_vma->rwsem"]
    assert first.signature == second.signature
    # The acquiring frame is _down_write_nest_lock, lock machinery: the title
    # names its caller, the place the new dependency was made.
    at = first.frames.index("expand_downwards")
    assert first.frames[at - 1] == "_down_write_nest_lock"
    assert not first.corrupted and first.text.split("\n")[-1].endswith("</TASK>")


def test_circular_title_without_a_call_trace_uses_the_acquiring_lock() -> None:
    # Cut before `Call Trace:`: the place is still named, from `... is trying
    # to acquire lock: ..., at: expand_downwards+0x10e/0x23b`; the report is
    # marked cut short.
    text = _log("v2-buildfix-6.1-two-boots-circular")
    lines = text.split("\n")
    end = next(i for i, line in enumerate(lines) if "Call Trace:" in line)
    (cut,) = console.parse("\n".join(lines[:end]))
    assert cut.title == "possible deadlock in expand_downwards" and cut.frames == []
    assert cut.corrupted and cut.reason == "console ends before its call trace"


def test_circular_report_details() -> None:
    migrate, mmap = console.parse(_log("canary-6.1-three-boots-migrate-circular"))
    # The dependency chain in the order printed (-> #1, then -> #0): one cycle,
    # reached from a syscall in one boot and from a page fault in the other.
    assert migrate.chain == mmap.chain == ["&anon_vma->rwsem", "kpv_canary_migration"]
    assert migrate.signature == mmap.signature
    assert migrate.frames[:7] == ["dump_stack_lvl", "dump_stack", "print_circular_bug",
                                  "check_noncircular", "__lock_acquire", "lock_acquire",
                                  "try_to_migrate_one"]
    assert "move_pages_and_store_status" in migrate.frames
    assert "migrate_misplaced_page" in mmap.frames
    assert migrate.text.split("\n")[0].endswith("] " + "=" * 54)


def test_rcu_stall_is_named_by_the_stalled_cpus_own_dump() -> None:
    (stall,) = [r for r in console.parse(_log("v1-6.1-two-boots-stack-rcu-stall"))
                if r.type == "rcu-stall"]
    # The starved grace-period kthread's stack comes first and stays in the
    # text; the frames are those of CPU 1's own dump, whose RIP is in
    # do_raw_spin_lock (machinery), called from unmap_page_range.
    assert "RCU grace-period kthread stack dump:" in stall.text
    assert "rcu_gp_kthread" not in stall.frames and stall.frames[0] == "unmap_page_range"
    assert "RIP: 0010:do_raw_spin_lock" in stall.text
    assert "[    C0]" not in stall.text and not stall.corrupted


def test_warn_message_before_the_header_is_kept() -> None:
    (warn,) = console.parse(_log("baseline-6.1-boot-numa-topology-warning"))
    first, message, header = warn.text.split("\n")[:3]
    assert "[ cut here ]" in first and "llc-sibling" in message and "WARNING: CPU: 1" in header
    assert warn.text.split("\n")[-1].endswith("---[ end trace 0000000000000000 ]---")


def test_interleaved_reports_of_two_contexts_are_separated() -> None:
    reports = console.parse(_log("v1-6.1-stack-test-hang-interleaved"))
    c0 = next(r for r in reports if r.first_line == 1077)  # grep -n: 1078 and 1088
    t52 = next(r for r in reports if r.first_line == 1087)
    assert "[    C0]" in c0.text and "[   T52]" not in c0.text
    assert "[   T52]" in t52.text and "[    C0]" not in t52.text
    assert c0.frames[3] == "unmap_page_range" and t52.frames[5] == "expand_downwards"
    assert not c0.corrupted and not t52.corrupted


_UNTIMED = r"\[ *\d+\.\d+\](?:\[ *[CT]\d+\])? ?"  # printk.time=0, no CONFIG_PRINTK_CALLER
_NO_CALLER = r"(?<=\])\[ *[CT]\d+\]"  # timestamps but no CONFIG_PRINTK_CALLER


@pytest.mark.parametrize(("name", "prefix"), [
    ("v1-6.1-boot-sleep-in-atomic-and-invalid-wait", _UNTIMED),
    ("v1-6.1-boot-sleep-in-atomic-and-invalid-wait", _NO_CALLER),
    ("old-2.6.36-circular-and-warn.excerpt", _UNTIMED),
])
def test_console_without_prefixes_gives_the_same_reports(name: str, prefix: str) -> None:
    # Without caller tags every stamped line is the report's own: a report
    # must still end where it ends (after `</TASK>` the boot goes on).
    text = _log(name)
    bare = re.sub(prefix, "", text)
    assert bare != text and not re.search(prefix, bare)
    assert [(r.type, r.title, r.locks, r.frames, r.text.count("\n")) for r in console.parse(bare)] \
        == [(r.type, r.title, r.locks, r.frames, r.text.count("\n")) for r in console.parse(text)]


def test_guest_output_is_not_a_kernel_report() -> None:
    # The kernel stamps its lines; a test printing "BUG:" on the console does not.
    text = _log("baseline-6.1-fork-test-clean")
    lines = text.split("\n")
    lines.insert(len(lines) // 2, "BUG: found a bug in my test\r")
    assert console.parse("\n".join(lines)) == []


def test_console_cut_in_a_call_trace_is_corrupted() -> None:
    text = _log("v1-6.1-boot-sleep-in-atomic-and-invalid-wait")
    lines = text.split("\n")
    (cut,) = console.parse("\n".join(lines[:245]))  # in the middle of the first trace
    assert cut.type == "sleep-in-atomic" and cut.corrupted
    assert cut.reason == "console ends in its call trace"
    (head,) = console.parse("\n".join(lines[:232]))  # before `Call Trace:`
    assert head.corrupted and head.reason == "console ends before its call trace"


# --- the format table --------------------------------------------------------

# One header line per format and era, as the kernel prints it, with the title
# the report gets when nothing follows the header (no frames: no function).
HEADERS = [
    ("WARNING: possible circular locking dependency detected", "lockdep-circular",
     "possible deadlock"),
    ("[ INFO: possible circular locking dependency detected ]", "lockdep-circular",
     "possible deadlock"),
    ("WARNING: possible recursive locking detected", "lockdep-recursive", "possible deadlock"),
    ("[ INFO: possible recursive locking detected ]", "lockdep-recursive", "possible deadlock"),
    ("WARNING: possible irq lock inversion dependency detected", "lockdep-irq-inversion",
     "possible deadlock"),
    ("[ INFO: possible irq lock inversion dependency detected ]", "lockdep-irq-inversion",
     "possible deadlock"),
    ("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "lockdep-safe-to-unsafe",
     "possible deadlock"),
    ("[ INFO: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected ]", "lockdep-safe-to-unsafe",
     "possible deadlock"),
    ("WARNING: inconsistent lock state", "lockdep-inconsistent", "inconsistent lock state"),
    ("[ INFO: inconsistent lock state ]", "lockdep-inconsistent", "inconsistent lock state"),
    ("[ BUG: Invalid wait context ]", "lockdep-invalid-wait-context", "invalid wait context"),
    ("WARNING: bad unlock balance detected!", "lockdep-bad-unlock", "bad unlock balance"),
    ("[ BUG: bad unlock balance detected! ]", "lockdep-bad-unlock", "bad unlock balance"),
    ("WARNING: held lock freed!", "lockdep-held-lock-freed", "held lock freed"),
    ("[ BUG: held lock freed! ]", "lockdep-held-lock-freed", "held lock freed"),
    ("WARNING: lock held when returning to user space!", "lockdep-held-at-return",
     "lock held when returning to user space"),
    ("WARNING: suspicious RCU usage", "lockdep-suspicious-rcu", "suspicious RCU usage"),
    ("[ INFO: suspicious rcu_dereference_check() usage. ]", "lockdep-suspicious-rcu",
     "suspicious RCU usage"),
    ("BUG: MAX_LOCKDEP_ENTRIES too low!", "lockdep-off",
     "lockdep turned off: MAX_LOCKDEP_ENTRIES too low"),
    ("BUG: MAX_STACK_TRACE_ENTRIES too low!", "lockdep-off",
     "lockdep turned off: MAX_STACK_TRACE_ENTRIES too low"),
    ("INFO: lockdep is turned off.", "lockdep-off", "lockdep is turned off"),
    ("Disabling lock debugging due to kernel taint", "lockdep-off",
     "lock debugging disabled due to kernel taint"),
    ("BUG: sleeping function called from invalid context at kernel/locking/rwsem.c:1572",
     "sleep-in-atomic", "sleeping function called from invalid context"),
    ("BUG: scheduling while atomic: stack/49/0x00000002", "scheduling-while-atomic",
     "scheduling while atomic"),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 100s! [stack:49]", "soft-lockup",
     "soft lockup"),
    ("BUG: soft lockup - CPU#1 stuck for 61s! [swapper:0]", "soft-lockup", "soft lockup"),
    ("watchdog: Watchdog detected hard LOCKUP on cpu 1", "hard-lockup", "hard lockup"),
    ("Kernel panic - not syncing: Watchdog detected hard LOCKUP on cpu 0", "hard-lockup",
     "hard lockup"),
    ("INFO: task stack:49 blocked for more than 122 seconds.", "hung-task", "task hung"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "rcu-stall", "rcu detected stall"),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu-stall", "rcu detected stall"),
    ("INFO: rcu_sched_state detected stall on CPU 0 (t=15000 jiffies)", "rcu-stall",
     "rcu detected stall"),
    ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b", "panic",
     "kernel panic: Attempted to kill init! exitcode=0x0000000b"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "oops",
     "kernel NULL pointer dereference"),
    ("BUG: unable to handle kernel NULL pointer dereference at 0000000000000008", "oops",
     "kernel NULL pointer dereference"),
    ("BUG: unable to handle page fault for address: ffffc90000a1b000", "oops",
     "unable to handle kernel paging request"),
    ("BUG: unable to handle kernel paging request at ffff880000000000", "oops",
     "unable to handle kernel paging request"),
    ("general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1]"
     " PREEMPT SMP NOPTI", "oops", "general protection fault"),
    ("general protection fault: 0000 [#1] SMP", "oops", "general protection fault"),
    ("Oops: 0000 [#1] PREEMPT SMP NOPTI", "oops", "Oops"),
    ("invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "oops", "invalid opcode"),
    ("kernel BUG at mm/mmap.c:2345!", "bug", "kernel BUG"),
    ("BUG: Bad page state in process stack  pfn:02c36", "bug", "Bad page state"),
    ("BUG: Bad page map in process stack  pte:8000000002c36067 pmd:02c35067", "bug",
     "Bad page map"),
    ("BUG: Bad rss-counter state mm:00000000c8a6f3f1 type:MM_ANONPAGES val:1", "bug",
     "BUG: Bad rss-counter state"),
    ("BUG: KASAN: use-after-free in anon_vma_interval_tree_remove+0x2a/0x1f0", "kasan",
     "KASAN: use-after-free in anon_vma_interval_tree_remove"),
    ("BUG: KASAN: double-free or invalid-free in kfree+0xd4/0x2a0", "kasan",
     "KASAN: double-free or invalid-free in kfree"),
    ("BUG: KFENCE: out-of-bounds read in test_out_of_bounds_read+0x97/0x1f0", "kfence",
     "KFENCE: out-of-bounds read in test_out_of_bounds_read"),
    ("BUG: KFENCE: memory corruption in kfree+0x7a/0x120", "kfence",
     "KFENCE: memory corruption in kfree"),
    ("UBSAN: shift-out-of-bounds in mm/mmap.c:1234:5", "ubsan", "UBSAN: shift-out-of-bounds"),
    ("INFO: trying to register non-static key.", "bug", "trying to register non-static key"),
    ("BUG: spinlock bad magic on CPU#0, swapper/0/1", "bug", "BUG: spinlock bad magic"),
    ("BUG: using smp_processor_id() in preemptible [00000000] code: stack/49", "bug",
     "BUG: using smp_processor_id() in preemptible"),
    ("WARNING: CPU: 1 PID: 0 at arch/x86/kernel/smpboot.c:432 topology_sane.isra.0+0x5a/0x61",
     "warning", "WARNING in topology_sane"),
    ("WARNING: at mm/mmap.c:1723 expand_downwards+0x1a1/0x1c0()", "warning",
     "WARNING in expand_downwards"),
    ("WARNING: lib/refcount.c:25 at refcount_warn_saturate+0x111/0x130, CPU#0: swapper/0/0",
     "warning", "WARNING in refcount_warn_saturate"),
    ("WARNING: init/1 still has locks held!", "warning", "WARNING: still has locks held"),
]

# Console lines that look like reports and are not.
NOT_REPORTS = [
    "traps: stack[49] general protection fault ip:401bf0 sp:7ffc3e846e20 error:0 in"
    " stack[401000+7b000]",
    "stack[51]: segfault at 7ffc3e847e20 ip 0000000000401bf0 sp 00007ffc3e846e20 error 6",
    "Command line: console=ttyS0 panic=-1",
    "rcu: \tRCU CPU stall warnings timeout set to 100 (rcu_cpu_stall_timeout).",
    " ... MAX_LOCKDEP_SUBCLASSES:  8",
    "Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar",
]


@pytest.mark.parametrize(("line", "type_", "title"), HEADERS, ids=[h[0][:50] for h in HEADERS])
@pytest.mark.parametrize("prefix", ["", "[    1.406828][    T1] ", "[    1.406828] "])
def test_header_formats(prefix: str, line: str, type_: str, title: str) -> None:
    (report,) = console.parse(prefix + line + "\r\n")
    assert (report.type, report.title) == (type_, title)
    assert report.first_line == report.last_line == 0


@pytest.mark.parametrize(("line", "type_", "title"), HEADERS, ids=[h[0][:50] for h in HEADERS])
def test_header_then_no_call_trace(line: str, type_: str, title: str) -> None:
    # What follows is the boot going on, not the report: a report that may
    # have no trace stays one line; one that must have a trace is corrupted.
    fmt = next(f for f in console.FORMATS if re.search(f.header, line))
    following = [f"[    1.3{n:05d}][    T1] Freeing unused kernel image (initmem) memory: 808K"
                 for n in range(50)]
    (report,) = console.parse("\n".join([f"[    1.300000][    T1] {line}", *following]))
    assert report.title == title
    if not fmt.stack:
        assert report.last_line == 0 and not report.corrupted
    else:
        assert report.corrupted


@pytest.mark.parametrize("line", NOT_REPORTS)
def test_not_reports(line: str) -> None:
    assert console.parse(f"[    2.903118][    C0] {line}\n") == []


def test_every_type_has_header_examples() -> None:
    assert {f.type for f in console.FORMATS} == {t for _, t, _ in HEADERS}


def test_format_titles_use_only_their_own_groups() -> None:
    for f in console.FORMATS:
        fields = set(re.findall(r"\{(\w+)\}", f.title))
        groups = set(re.compile(f.header).groupindex) | set(re.compile(f.detail).groupindex)
        # A detail without `what` names the kind by which of its groups matched.
        named = {"what"} if f.detail and "what" not in groups else set()
        assert fields <= groups | {"func"} | named, f.header


# The skip list: frames that are machinery, and frames that are places.
MACHINERY = [
    "lock_acquire", "__lock_acquire", "lock_release", "down_write", "down_read_trylock",
    "down", "_down_write_nest_lock", "up_write", "mutex_lock_nested", "__mutex_lock",
    "_raw_spin_lock", "_raw_spin_lock_irqsave", "do_raw_spin_lock", "queued_spin_lock_slowpath",
    "rwsem_down_write_slowpath", "percpu_down_write", "dump_stack_lvl", "dump_stack",
    "__might_sleep", "__might_resched", "__might_fault", "lockdep_rcu_suspicious",
    "print_circular_bug", "check_noncircular", "check_prev_add", "validate_chain", "mark_lock",
    "valid_state", "warn_slowpath_null", "__warn", "report_bug", "handle_bug", "exc_invalid_op",
    "asm_exc_invalid_op", "__schedule_bug", "nmi_cpu_backtrace",
    "asm_sysvec_apic_timer_interrupt", "debug_check_no_locks_freed", "printk", "panic",
]
PLACES = [
    "expand_downwards", "expand_stack_locked", "__anon_vma_prepare", "anon_vma_clone",
    "anon_vma_fork", "unlink_anon_vmas", "unmap_page_range", "setup_arg_pages",
    "exc_page_fault", "handle_mm_fault", "lock_mm_and_find_vma", "lock_page", "mmap_region",
    "exit_mmap", "copy_process", "update_mmu_cache", "downgrade_write_helper", "mark_page_accessed",
    "topology_sane", "kernel_init", "dup_mmap", "mmput",
]


@pytest.mark.parametrize("name", MACHINERY)
def test_skip_list_skips_machinery(name: str) -> None:
    assert console._SKIP_RE.fullmatch(name)


@pytest.mark.parametrize("name", PLACES)
def test_skip_list_keeps_places(name: str) -> None:
    assert not console._SKIP_RE.fullmatch(name)


# --- properties --------------------------------------------------------------


def _check_invariants(text: str, reports: list[console.Report]) -> None:
    n = len(text.split("\n"))
    types = {f.type for f in console.FORMATS}
    for r in reports:
        assert 0 <= r.first_line <= r.last_line < n
        assert r.type in types and r.title
        assert r.corrupted == bool(r.reason)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_parse(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    _check_invariants(text, console.parse(text))


_REAL = [line for p in LOGS for line in _text(p).split("\n")]
_REPORT_LINES = [line for p in LOGS for r in console.parse(_text(p)) for line in
                 _text(p).split("\n")[r.first_line:r.last_line + 1]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_REPORT_LINES), st.sampled_from(_REAL)),
                max_size=300),
       st.sampled_from(["\n", "\r\n", "\r\r\n"]))
def test_shuffled_real_lines_parse(lines: list[str], end: str) -> None:
    text = end.join(lines)
    _check_invariants(text, console.parse(text))


_WITH_REPORTS = [p for p in LOGS if console.parse(_text(p))]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_cutting_a_log_never_invents_a_report(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(_WITH_REPORTS), label="log")
    lines = _text(path).split("\n")
    cut = data.draw(st.integers(0, len(lines)), label="cut")
    full = console.parse(_text(path))
    part = console.parse("\n".join(lines[:cut]))
    assert Counter(r.type for r in part) <= Counter(r.type for r in full)
    # A report that ended before the cut is the same report, line for line.
    whole = {(r.first_line, r.type, r.title, r.text) for r in full if r.last_line < cut}
    assert whole <= {(r.first_line, r.type, r.title, r.text) for r in part}


def _lines_of_text(text: str, index: int) -> list[str]:
    """The console lines a log's index-th report spans, other contexts' included."""
    r = console.parse(text)[index]
    return text.split("\n")[r.first_line:r.last_line + 1]


def _lines_of(name: str, index: int) -> list[str]:
    return _lines_of_text(_log(name), index)


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_interleaving_two_contexts_keeps_both_reports(rnd: random.Random) -> None:
    # A [T1] lockdep report and a [T0] WARN, both real, merged in random order
    # the way two CPUs' printk output mixes on one console.
    sleep = _lines_of("v1-6.1-boot-sleep-in-atomic-and-invalid-wait", 0)
    warn = _lines_of("baseline-6.1-boot-numa-topology-warning", 0)
    merged, a, b = [], list(sleep), list(warn)
    while a or b:
        source = a if a and (not b or rnd.random() < 0.5) else b
        merged.append(source.pop(0))
    alone = console.parse("\n".join(sleep)) + console.parse("\n".join(warn))
    assert len(alone) == 2 and not any(r.corrupted for r in alone)
    both = console.parse("\n".join(merged))
    assert sorted((r.type, r.title, r.text, r.frames, r.locks, r.corrupted) for r in both) == \
        sorted((r.type, r.title, r.text, r.frames, r.locks, r.corrupted) for r in alone)


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_guest_output_inside_a_report_is_dropped(rnd: random.Random) -> None:
    # Without CONFIG_PRINTK_CALLER only the timestamp tells the kernel's lines
    # from the guest's: the init's own lines, scattered through the report.
    text = _log("v1-6.1-boot-sleep-in-atomic-and-invalid-wait")
    untagged = re.sub(r"\]\[ *[CT]\d+\]", "]", text)
    report = _lines_of_text(untagged, 0)
    guest = [line for line in untagged.split("\n") if line.startswith(("KPV-INIT", "exec "))]
    assert len(guest) >= 4
    merged = list(report)
    for line in guest:
        merged.insert(rnd.randrange(1, len(merged)), line)
    (alone,) = console.parse("\n".join(report))
    (mixed,) = console.parse("\n".join(merged))
    assert (mixed.title, mixed.text, mixed.frames, mixed.corrupted) == \
        (alone.title, alone.text, alone.frames, False)


# --- attribution -------------------------------------------------------------


def _walk(marks: list[Marker], line: int) -> str | None:
    """The test running at a line, by replaying the markers up to it."""
    current = None
    for m in marks:
        if m.line > line:
            break
        if m.kind in ("start", "boot", "done"):
            current = m.test if m.kind == "start" else None
        elif m.kind == "end" and m.test == current and m.line < line:
            current = None
    return current


_MARKER = st.tuples(st.sampled_from(["boot", "start", "result", "end", "done"]),
                    st.sampled_from(["exec", "fork", None]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_MARKER, max_size=12), st.lists(st.integers(0, 70), max_size=12))
def test_attribution_follows_the_markers(kinds: list, lines: list[int]) -> None:
    marks = [Marker(kind, test if kind != "boot" and kind != "done" else None, {}, 5 * i + 1)
             for i, (kind, test) in enumerate(kinds)]
    reports = [console.Report("bug", "BUG", "", first_line=n) for n in lines]
    got = console.attribute(reports, marks)
    assert [r.test for r in got] == [_walk(marks, n) for n in lines]
    assert [r.first_line for r in got] == lines


def test_attribution_at_the_marker_lines() -> None:
    marks = markers.parse("@@kpv boot\n@@kpv start fork debug_locks=1\n\n"
                          "@@kpv end fork status=0\n\n@@kpv start stack\n\n")
    reports = [console.Report("bug", "BUG", "", first_line=n) for n in range(8)]
    # Both markers' own lines are inside the test; a test without an end runs on.
    assert [r.test for r in console.attribute(reports, marks)] == \
        [None, "fork", "fork", "fork", None, "stack", "stack", "stack"]


def test_attribution_of_a_real_log() -> None:
    text = _log("v1-6.1-stack-test-hang-interleaved")
    reports = _reports(text)
    # The boot's reports precede `@@kpv start`; the soft lockup follows `@@kpv done`.
    assert [r.test for r in reports[:2]] == [None, None]
    assert {r.test for r in reports[2:-1]} == {"stack"}
    assert reports[-1].type == "soft-lockup" and reports[-1].test is None


def test_attribute_leaves_its_input_alone() -> None:
    text = _log("v1-6.1-fork-test-lockdep-off")
    reports = console.parse(text)
    before = copy.deepcopy(reports)
    after = console.attribute(reports, markers.parse(text))
    assert reports == before and after[-1].test == "fork"


@pytest.mark.parametrize(("spec", "cpus"), [
    ("1", [1]), ("1,3", [1, 3]), ("0-2,5", [0, 1, 2, 5]), ("x-1", []), ("", []),
])
def test_cpu_lists_of_nmi_requests(spec: str, cpus: list[int]) -> None:
    assert console._cpus(spec) == cpus


def test_cpu_list_is_bounded() -> None:
    assert len(console._cpus("0-99999999999," * 10000)) == console._CPUS_MAX
