"""Kernel reports in a console log: what, where, which test.

parse(log) finds every report (lockdep splat, BUG, WARNING, oops, panic,
lockup, hung task, RCU stall, KASAN, KFENCE, UBSAN, list corruption) and
names it `<what> in <function>`, the way syzkaller's pkg/report titles
them, so one bug gets one title across runs, vCPU counts and kernel eras
(2.6.3x and 6.x print the same report differently). attribute() hands
each report to the test whose markers enclose it. Both are pure: no I/O,
and they never raise on any input.

How a report is found:
  1. One regex over the whole log finds the few lines that could start a
     report (a cheap prefilter: most console lines are never looked at).
  2. The first FORMATS row whose header matches names the report's type.
  3. The report then takes the following lines of its own printk context
     (CONFIG_PRINTK_CALLER's `[T1]`/`[C0]`), through its call trace, and up
     to `---[ end trace ... ]---` for the kinds that print one.

Lines are numbered as log.split("\n") numbers them, like pipeline.markers,
so a report's first_line and a marker's line compare directly.
"""

from __future__ import annotations

import bisect
import gc
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from pipeline import logtext, sanitize
from pipeline.logtext import TIMED_RE, Cleaned
from pipeline.markers import PRINTK_STAMP, Marker


@dataclass
class Report:
    type: str  # stable type name, e.g. "lockdep-circular", "bug", "warning"
    title: str  # "<what> in <function>"
    text: str  # the report's own lines
    locks: list[str] = field(default_factory=list)  # lock classes named, for lockdep
    frames: list[str] = field(default_factory=list)  # call trace function names, innermost first
    test: str | None = None  # the test it belongs to; None for the boot
    first_line: int = 0  # 0-based line in the console log where it starts
    corrupted: bool = False  # cut short or interleaved beyond repair
    last_line: int = 0  # 0-based line in the console log where it ends
    reason: str = ""  # why it is corrupted; empty when it is not
    chain: list[str] = field(default_factory=list)  # circular lockdep: the dependency chain's locks
    signature: str = ""  # equal for the same bug seen twice: the type and the title or lock cycle


@dataclass(frozen=True)
class Format:
    """One kind of report header: how to recognise it and how to title it."""

    type: str  # Report.type
    header: str  # regex searched in a line's text; named groups feed `title`
    title: str  # str.format template: {func} and the header's named groups
    # Where {func} comes from, first found wins: "header" (its func group),
    # "rip" (the faulting instruction), "acquire" (the first lock's `at:`), "trace".
    where: tuple[str, ...] = ("trace",)
    stack: bool = True  # a call trace is expected; without one the report is corrupted
    body: str = "trace"  # what follows the header: "trace", "line" (nothing) or "tail"
    tail: str = ""  # for body="tail": the lines that still belong to the report
    inside: bool = False  # in an open report of the same context, part of that report
    skip: str = ""  # regex of extra frames to skip for this kind, beyond _SKIP
    end: str = ""  # regex of the line that closes the report (`---[ end trace`, `=====`)
    after_max: int = 20  # own lines kept between a trace's end and the closing line
    more: str = ""  # regex of lines after a call trace that go on with another dump
    trace: str = ""  # regex of a line that opens the call trace, beyond `Call Trace:`
    nmi: bool = False  # the CPUs it sends NMIs to print their part of it
    detail: str = ""  # regex searched in the report's lines; its named groups feed `title`


# Printed once a WARN, oops or panic is over.
_END_TRACE = r"---\[ end (?:trace|Kernel panic)"
# KASAN, KFENCE and UBSAN print their report between two rows of `=`.
_END_ROW = r"^={20,}\s*$"

# The message lines of UBSAN before 5.8, each group named for the kind that
# 5.8 on prints in the header (`_` for `-`).
_UBSAN_KINDS = (
    r"^(?:(?P<array_index_out_of_bounds>index \S+ is out of range)"
    r"|(?P<shift_out_of_bounds>shift exponent|left shift of)"
    r"|(?P<signed_integer_overflow>signed integer overflow)"
    r"|(?P<unsigned_integer_overflow>unsigned integer overflow)"
    r"|(?P<negation_overflow>negation of)"
    r"|(?P<division_overflow>division (?:by zero|of))"
    r"|(?P<invalid_load>load of value)"
    r"|(?P<null_ptr_deref>[\w ]+ null pointer of type)"
    r"|(?P<misaligned_access>[\w ]+ misaligned address)"
    r"|(?P<object_size_mismatch>[\w ]+ address \S+ with insufficient space)"
    r"|(?P<unreachable>calling __builtin_unreachable)"
    r"|(?P<variable_length_array>variable length array bound))")

# Lockdep's old banners were `[ INFO: ... ]` and `[ BUG: ... ]`; 4.x on print
# `WARNING: ...`. One alternation covers both eras and keeps rows readable.
_LOCKDEP = r"(?:WARNING|INFO|BUG): "

# Lines of a lockdep report that has no call trace: the kernel ident, the
# dashes, the task line and the held-lock list.
_LOCKDEP_TAIL = (r"^\s*(?:-{5,}|\S+ #\d+|\S+/\d+ is leaving|\d+ locks? held by|no locks held by"
                 r"|#\d+: )")

# The allocator's might_sleep checks: the caller asked for memory, the bug is the caller's.
_ALLOC = (r"slab_pre_alloc_hook|might_alloc|fs_reclaim_\w+|__kmem_cache_alloc\w*"
          r"|kmem_cache_alloc\w*|__kmalloc\w*|kmalloc\w*|kzalloc\w*|__alloc_pages\w*"
          r"|alloc_pages\w*|__get_free_pages|vmalloc\w*|__vmalloc\w*")
# Frames that schedule away rather than wait on something: a hung task or a
# sleeping-in-atomic report names the caller that went to sleep.
_SCHED = (r"__schedule\w*|schedule|schedule_\w+|preempt_schedule\w*|io_schedule\w*"
          r"|__wait_for_common|wait_for_common\w*|wait_for_completion\w*|__wait_\w+")

# What an RCU stall report prints after its first call trace.
_RCU_MORE = r"^rcu: |^Sending NMI from CPU|^NMI backtrace for cpu|^CPU: \d+ PID: \d+"

# Order matters: the first row that matches wins, so specific rows come first.
FORMATS: tuple[Format, ...] = (
    Format("lockdep-circular", _LOCKDEP + r"possible circular locking dependency detected",
           "possible deadlock in {func}", where=("trace", "acquire")),
    Format("lockdep-recursive", _LOCKDEP + r"possible recursive locking detected",
           "possible deadlock in {func}", where=("trace", "acquire")),
    Format("lockdep-irq-inversion", _LOCKDEP + r"possible irq lock inversion dependency detected",
           "possible deadlock in {func}"),
    Format("lockdep-safe-to-unsafe",
           _LOCKDEP + r"(?:HARD|SOFT)IRQ-(?:READ-)?safe -> (?:HARD|SOFT)IRQ-(?:READ-)?unsafe"
           r" lock order detected",
           "possible deadlock in {func}"),
    Format("lockdep-inconsistent", _LOCKDEP + r"inconsistent lock state",
           "inconsistent lock state in {func}"),
    Format("lockdep-invalid-wait-context", r"BUG: Invalid wait context",
           "invalid wait context in {func}", where=("trace", "acquire")),
    Format("lockdep-bad-unlock", _LOCKDEP + r"bad unlock balance detected",
           "bad unlock balance in {func}"),
    Format("lockdep-held-lock-freed", _LOCKDEP + r"held lock freed",
           "held lock freed in {func}"),
    # Printed on the way out to user space, with the held locks but no stack:
    # the lock's own `at:` is the place to name.
    Format("lockdep-held-at-return", _LOCKDEP + r"lock held when returning to user space",
           "lock held when returning to user space in {func}", where=("acquire",),
           stack=False, body="tail", tail=_LOCKDEP_TAIL),
    Format("lockdep-suspicious-rcu",
           _LOCKDEP + r"suspicious (?:RCU|rcu_dereference_check\(\)) usage",
           "suspicious RCU usage in {func}"),
    # Lockdep ran out of room and stopped checking; the stack says who ran out.
    Format("lockdep-off", r"BUG: MAX_(?P<what>\w+) too low!",
           "lockdep turned off: MAX_{what} too low"),
    # Also printed inside sleep-in-atomic and hung-task reports once lockdep
    # is off; on its own it still says that locking went unchecked from here.
    Format("lockdep-off", r"INFO: lockdep is turned off", "lockdep is turned off",
           stack=False, body="line", inside=True),
    Format("lockdep-off", r"Disabling lock debugging due to kernel taint",
           "lock debugging disabled due to kernel taint",
           stack=False, body="line", inside=True),
    Format("sleep-in-atomic", r"BUG: sleeping function called from invalid context",
           "sleeping function called from invalid context in {func}",
           skip=_SCHED + r"|" + _ALLOC),
    Format("scheduling-while-atomic", r"BUG: scheduling while atomic",
           "scheduling while atomic in {func}", skip=_SCHED),
    # The stuck CPU's RIP is where it spins; its trace starts in the timer IRQ.
    Format("soft-lockup", r"BUG: soft lockup - CPU#\d+ stuck", "soft lockup in {func}",
           where=("rip", "trace")),
    Format("hard-lockup", r"Watchdog detected hard LOCKUP on cpu", "hard lockup in {func}",
           where=("rip", "trace")),
    Format("hung-task", r"INFO: task \S.* blocked for more than \d+ seconds",
           "task hung in {func}", skip=_SCHED,
           # khungtaskd then lists every lock held in the system (debug_show_all_locks),
           # up to a row of `=`.
           more=r"^Showing all locks held in the system", end=_END_ROW),
    # 6.x dumps the starved grace-period kthread first, then the stalled CPU
    # itself (`CPU: 1 PID: 68 ...`, RIP, trace): that last dump is the place.
    Format("rcu-stall", r"INFO: rcu_\w+ self-detected (?:expedited )?stall",
           "rcu detected stall in {func}", where=("rip", "trace"), skip=r"rcu_\w+",
           more=_RCU_MORE),
    # Detected by another CPU: each stalled CPU prints its own backtrace from
    # an NMI (context C<cpu>); those dumps are the report's, and the last names it.
    Format("rcu-stall", r"INFO: rcu_\w+ detected (?:expedited )?stalls?",
           "rcu detected stall in {func}", where=("rip", "trace"), skip=r"rcu_\w+",
           more=_RCU_MORE, nmi=True),
    Format("panic", r"Kernel panic - not syncing: ?(?P<msg>.*)", "kernel panic: {msg}",
           stack=False, end=_END_TRACE),
    Format("oops", r"BUG: (?:unable to handle )?kernel NULL pointer dereference",
           "kernel NULL pointer dereference in {func}", where=("rip", "trace"),
           end=_END_TRACE),
    Format("oops", r"BUG: unable to handle (?:kernel paging request|page fault for address)",
           "unable to handle kernel paging request in {func}", where=("rip", "trace"),
           end=_END_TRACE),
    # ` ip:` is the kernel's one-line note about a user process's fault, not a
    # kernel report.
    Format("oops", r"general protection fault(?! ip:)", "general protection fault in {func}",
           where=("rip", "trace"), end=_END_TRACE),
    # Follows `kernel BUG at` and the page fault BUGs, so it is part of them.
    Format("oops", r"\b(?P<what>Oops|invalid opcode|divide error|stack segment): .*\[#\d+\]",
           "{what} in {func}", where=("rip", "trace"), inside=True, end=_END_TRACE),
    Format("bug", r"kernel BUG at ", "kernel BUG in {func}", where=("rip", "trace"),
           end=_END_TRACE),
    Format("bug", r"BUG: Bad page (?P<what>state|map)", "Bad page {what} in {func}",
           skip=r"bad_page|free_page_is_bad\w*|print_bad_pte"),
    # The sanitizers: what they found and where, in the header; after the call
    # trace come the allocation and free stacks and a memory dump, up to a
    # closing row of `=`.
    Format("kasan", r"BUG: KASAN: (?P<what>[\w -]+?) in (?P<func>[\w.]+)",
           "KASAN: {what} {access} in {func}", where=("header", "trace"), end=_END_ROW,
           after_max=400, detail=r"^(?P<access>Read|Write) of size \d+"),
    # KFENCE prints its stacks bare: the access's stack follows the line saying what and where.
    Format("kfence", r"BUG: KFENCE: (?P<what>[\w -]+?) in (?P<func>[\w.]+)",
           "KFENCE: {what} in {func}", where=("header", "trace"), end=_END_ROW, after_max=400,
           trace=r"^(?:Out-of-bounds|Use-after-free|Invalid|Corrupted memory) .*\bat 0x"
           r"|^Invalid free of 0x"),
    Format("ubsan", r"UBSAN: (?P<what>[\w-]+) in \S+:\d+", "UBSAN: {what} in {func}",
           skip=r"ubsan_\w+|__ubsan_\w+", end=_END_ROW),
    # Before 5.8 the kind was not in the header but in the line after it.
    Format("ubsan", r"UBSAN: Undefined behaviou?r in \S+:\d+", "UBSAN: {what} in {func}",
           skip=r"ubsan_\w+|__ubsan_\w+", end=_END_ROW, detail=_UBSAN_KINDS),
    Format("bug", r"INFO: trying to register non-static key",
           "trying to register non-static key in {func}"),
    Format("bug", r"BUG: (?P<what>(?:spinlock|rwlock) .+?) on CPU", "BUG: {what} in {func}"),
    Format("bug", r"BUG: (?P<words>.*)", "BUG{words} in {func}", stack=False),
    # WARN() in every era: 2.6.3x `WARNING: at file:line func+0x..()`,
    # 3.x-6.x `WARNING: CPU: 1 PID: 1 at file:line func+0x..`, 6.19+
    # `WARNING: file:line at func+0x.., CPU#0: comm/1`.
    Format("warning",
           r"WARNING: (?:CPU: \d+ PID: \d+ at |at )?\S+:\d+ (?:at )?(?P<func>[\w.]+)\+0x",
           "WARNING in {func}", where=("header", "rip", "trace"), end=_END_TRACE),
    Format("warning", r"WARNING: (?P<words>.*)", "WARNING{words} in {func}", stack=False),
)

# Messages that WARN(cond, fmt) or a BUG print with the report and that name
# the kind of bug: the report takes that kind, and its title names the caller,
# not the helper that did the check.
MESSAGES: tuple[tuple[re.Pattern[str], Format], ...] = (
    (re.compile(r"\blist_(?:add|del)(?:_rcu)? corruption"),
     Format("list-corruption", "", "corrupted list in {func}", where=("rip", "trace"),
            skip=r"__list_\w+|list_\w+", end=_END_TRACE)),
)

# Every header line holds one of these: the prefilter run over the whole log.
# A header line without one is never found (test_console would fail). Oops
# headers (Oops, GPF, invalid opcode, ...) all carry die()'s `[#1]`; words
# that start with a capital or `[` are the ones the regex engine tries at
# few places (~1.5x faster than the lower-case words).
_HINT_RE = re.compile(
    r"BUG|WARNING|INFO: |Oops|\[#|Kernel panic|LOCKUP|Disabling lock debugging|UBSAN: ")

_HEADERS = tuple(re.compile(f.header) for f in FORMATS)
# All rows at once, to turn most lines down with one search; rows reuse group
# names, which one pattern cannot.
_ANY_HEADER_RE = re.compile(
    "|".join(re.sub(r"\(\?P<\w+>", "(?:", f"(?:{f.header})") for f in FORMATS))

# printk's prefix: an optional syslog level, the timestamp, and with
# CONFIG_PRINTK_CALLER the caller (`[T1]` task, `[C0]` CPU), which some
# consoles print after a space. Searched, not matched: the guest's own output
# can run into a kernel line on the serial console.
_PREFIX_RE = re.compile(rf"{PRINTK_STAMP}(?: ?\[ *([CT]\d+)\])? ?")

# The kernel's first line at every boot.
BOOT_BANNER = "Linux version "

# Lockdep's banner, printed just before its header line.
_BANNER_RE = re.compile(r"^\s*={5,}\s*$")
# WARN's, printed before the message and the header.
_CUT_HERE = "[ cut here ]"
_WARN_MESSAGE_MAX = 4  # own lines of WARN message between `[ cut here ]` and the header

_TRACE_START_RE = re.compile(r"Call [Tt]race:|Backtrace:")

# A frame: 6.x `func+0x1a/0x2b [mod]`, 2.6.3x `[<ffffffff81234567>] func+0x1a/0x2b`
# (either with a leading `? ` when unreliable, or a `<IRQ>`/`<EOI>` stack
# switch on the same line), or symbolised `func (mm/mmap.c:2053)`.
_FRAME_RE = re.compile(
    r"^\s*(?:<(?:IRQ|EOI|NMI)>\s*)?(?:\[<?[0-9a-f]+>?\]\s*){0,2}(\? )?\s*([A-Za-z_][\w.]*)"
    r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+|\s+\([^()]*:\d+(?::\d+)?\))")

# The other lines a call trace holds: stack switches, and the registers shown
# where an IRQ or syscall entry interrupted the code.
_TRACE_OTHER_RE = re.compile(
    r"^\s*(?:</?(?:TASK|IRQ|NMI|SOFTIRQ|EOI)>"
    r"|(?:RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d+|FS|GS|CS|DS|ES|CR\d|DR\d|EFLAGS"
    r"|ORIG_RAX|PKRU|Code):)")

_TRACE_END = "</TASK>"
# An RCU stall or lockup detector asking other CPUs for their backtraces.
_NMI_TO_RE = re.compile(r"Sending NMI from CPU \d+ to CPUs ([\d,-]+)")
_CPUS_MAX = 4096  # a CPU list naming more is not one
_CPU_DUMP_RE = re.compile(r"^CPU: \d+ PID: \d+")  # dump_stack's and show_regs' first line


# The faulting or interrupted instruction: x86_64 (6.x and 2.6.3x), i386, arm, arm64.
_RIP_RE = re.compile(
    r"(?:\bR?IP: (?:[0-9a-f]{4}:)?|EIP is at |PC is at |\bpc : )"
    r"(?:\[<[0-9a-f]+>\]\s*){0,2}([A-Za-z_][\w.]*)\+0x")

# Where a lock was taken: `..., at: func+0x1a/0x2b` (2.6.3x: `at: [<...>] func+...`).
_AT_RE = re.compile(r", at: (?:\[<[0-9a-f]+>\]\s*)?([A-Za-z_][\w.]*)\+0x")

# A lock class with its usage bits, `(&mm->mmap_lock){++++}-{3:3}`; usage
# letters are + - . ? only, which keeps other `){` out.
_LOCK_USAGE_RE = re.compile(r"\)\{[-+.?]+\}")
_RELEASE_RE = re.compile(r"trying to release lock \(((?:[^()]|\([^()]*\))+)\) at:")
_CHAIN_RE = re.compile(r"^\s*-> #\d+ \(")

# Frames that name machinery rather than the place of the bug: lockdep, the
# lock primitives, might_sleep, printk and stack dumping, WARN/BUG traps and
# the IRQ and NMI plumbing a stall's trace runs through. Matched against the
# whole function name (compiler suffixes such as .cold already removed).
_SKIP = (
    r"lock_acquire\w*|__lock_acquire\w*|lock_release|__lock_release|lock_acquired"
    r"|lock_contended|lockdep_\w+|__lockdep_\w+|validate_chain|check_\w+|mark_lock\w*"
    r"|mark_usage|mark_held_locks|valid_state|print_\w+|debug_\w+|__debug_\w+"
    r"|_raw_\w+|__raw_\w+|do_raw_\w+|raw_spin_\w+|spin_\w+|_spin_\w+|__spin_\w+|queued_\w+"
    r"|native_queued_\w+|__pv_queued_\w+|read_lock\w*|write_lock\w*|read_unlock\w*"
    r"|write_unlock\w*|mutex_\w+|__mutex_\w+|down|down_\w+|_down_\w+|__down\w*|up|up_\w+|__up\w*"
    r"|rwsem_\w+|__rwsem_\w+|percpu_down_\w+|percpu_up_\w+|__percpu_down\w*|rwbase_\w+"
    r"|rt_mutex\w*|__rt_mutex\w*"
    r"|__might_\w+|___might_sleep|might_fault|__cant_sleep|__cant_migrate"
    r"|dump_stack\w*|show_stack|show_trace\w*|show_regs|__show_regs|printk\w*|vprintk\w*"
    r"|_printk|panic|nmi_panic|__warn\w*|warn_\w+|report_bug|handle_bug|exc_invalid_op"
    r"|asm_exc_\w+|do_invalid_op|do_trap|do_error_trap|invalid_op|oops_\w+|die|__die\w*"
    r"|__schedule_bug|schedule_debug"
    r"|nmi_cpu_backtrace\w*|nmi_trigger_cpumask_backtrace|arch_trigger_cpumask_backtrace"
    r"|trigger_\w+backtrace\w*|watchdog_\w+|__sysvec_\w+|sysvec_\w+|asm_sysvec_\w+"
    r"|asm_common_interrupt|common_interrupt|__irq_exit_rcu|irq_exit_rcu|irq_exit"
    r"|update_process_times|tick_\w+|__hrtimer_\w+|hrtimer_\w+|handle_irq_event\w*"
    r"|__handle_irq_event\w*|local_apic_timer_interrupt|smp_apic_timer_interrupt"
    r"|apic_timer_interrupt|scheduler_tick"
    # Busy-wait loops: a CPU stuck in one was put there by its caller.
    r"|delay_tsc|delay_loop|delay_halt\w*|__delay|__const_udelay|__udelay|__ndelay|mdelay|udelay"
)
_SKIP_RE = re.compile(_SKIP)
_ROW_SKIP = {f.skip: re.compile(f.skip)
             for f in (*FORMATS, *(f for _, f in MESSAGES)) if f.skip}

_TITLE_MAX = 120

# A report that reaches these sizes without ending lost its end in the noise.
_HEAD_MAX = 400  # own lines before the call trace (long lockdep chains, lock lists)
_HEAD_OPTIONAL_MAX = 40  # the same, where a call trace may not come at all
_TRACE_MAX = 400  # own lines of call trace
_NOISE_MAX = 20  # foreign lines dropped inside an open <TASK> block (no caller info)
_SPAN_MAX = 20000  # console lines a report may span, its own and other contexts'
_QUIET_MAX = 500  # other contexts' lines in a row that end a report whose own went quiet

_BANNER_LOOKBACK = 50  # console lines to look back for a banner, past other contexts'
_KEPT_LINES = 50000  # read lines' offsets and cleaned text kept before forget() drops any
# Reports read whole per log. Past this many, a storm (the same WARN from a
# loop): headers are only counted, so time and memory stay linear in the log.
REPORTS_MAX = 10000
_VARYING_RE = re.compile(r"[\d=\[\]]|:.")  # a word of a message that varies run to run

class _Line(NamedTuple):
    text: str  # the cleaned line from its printk prefix on
    body: str  # the text after the prefix
    context: str | None  # `T1`/`C0` with CONFIG_PRINTK_CALLER
    kernel: bool  # has a printk timestamp


def _read(raw: str) -> _Line:
    """One console line, cleaned, split into printk prefix and text."""
    line = raw.rstrip("\r")
    if "\r" in line:
        # The console went back over the line (a progress bar, a prompt): the
        # kernel's part, if there is one, is the part with a printk prefix.
        parts = line.split("\r")
        line = next((p for p in reversed(parts) if _PREFIX_RE.search(p)), parts[-1])
    if not (line.isascii() and line.isprintable()):  # most kernel lines are
        line = sanitize.clean(line)
    m = _PREFIX_RE.match(line) or (_PREFIX_RE.search(line) if "[" in line else None)
    if m is None:
        return _Line(line, line, None, False)
    return _Line(line[m.start():], line[m.end():], m.group(1), True)


class _Log:
    """The console log, its lines read lazily by number: most are never looked at.

    No list of every line: on a log of short lines one (with its offsets and
    a cache slot per line) was many times the log's size. A report is read
    forward from its header and back at most _BANNER_LOOKBACK lines, headers
    in order: lines are found from a neighbour's offset, the text is loaded
    a piece at a time, and forget() drops what is kept of lines behind the
    reading.
    """

    def __init__(self, log: Cleaned) -> None:
        # Where the kernel stamps its lines, a line without a stamp is the
        # guest's own output (a test printing "BUG:"), never a kernel report.
        self.timed = log.timed
        self.text = log.reader(behind=_BANNER_LOOKBACK)
        self._start: dict[int, int] = {0: 0}  # line number -> offset, of lines near the reading
        self._cache: dict[int, _Line] = {}

    def has(self, n: int) -> bool:
        """Whether the log has a line n."""
        start = self._offset(n)
        return start >= 0 and self.text.reach(start)

    def hints(self) -> Iterator[int]:
        """The lines that could hold a report header, in order.

        One regex over the whole log: far cheaper than looking at each line.
        """
        for hit in self.text.matches(_HINT_RE, per_line=True):
            self._start[hit.line] = hit.line_start
            yield hit.line

    def hinted(self, n: int) -> bool:
        return _HINT_RE.search(self.raw(n)) is not None  # as hints(): no hint holds a \n

    def raw(self, n: int) -> str:
        text, end = self.text.line(self._offset(n))
        self._start[n + 1] = end + 1  # reading goes on forward: the next line's offset
        return text

    def before(self, n: int, count: int) -> str:
        """The raw text of up to `count` lines before line n, found without reading them."""
        end = start = self._offset(n)
        for _ in range(count):
            if start == 0:
                break
            start = self.text.line_start(start - 1)
        return self.text.slice(start, end)

    def line(self, n: int) -> _Line:
        got = self._cache.get(n)
        if got is None:
            got = self._cache[n] = _read(self.raw(n))
        return got

    def forget(self, before: int) -> None:
        """Lines before this one are not read again: drop what is kept of them."""
        if len(self._start) + len(self._cache) > _KEPT_LINES:
            self._start = {k: v for k, v in self._start.items() if k >= before or k == 0}
            self._cache = {k: v for k, v in self._cache.items() if k >= before}

    def _offset(self, n: int) -> int:
        """Where line n starts; -1 when the log has fewer line ends before it."""
        if (got := self._start.get(n)) is not None:
            return got
        if (after := self._start.get(n + 1)) is not None:  # reading back: the line before
            got = self._start[n] = self.text.line_start(after - 1)
            return got
        known = n - 1
        while known not in self._start:  # line 0 is always known
            known -= 1
        for k in range(known + 1, n + 1):
            end = self.text.find("\n", self._start[k - 1])
            if end < 0:
                return -1
            self._start[k] = end + 1
        return self._start[n]


def _header(body: str) -> int | None:
    """The index in FORMATS of the row that matches this text, if any."""
    if _ANY_HEADER_RE.search(body) is None:
        return None
    return next((i for i, h in enumerate(_HEADERS) if h.search(body)), None)


def _cpus(spec: str) -> list[int]:
    """The CPUs of a kernel CPU list, `1`, `1,3` or `0-2,5` (%*pbl)."""
    out: list[int] = []
    for part in spec.split(",", _CPUS_MAX):
        first, _, last = part.partition("-")
        if first.isdigit() and (last.isdigit() or not last):
            out.extend(range(min(int(first), _CPUS_MAX), min(int(last or first), _CPUS_MAX) + 1))
        if len(out) >= _CPUS_MAX:
            break
    return out[:_CPUS_MAX]


def _func_name(raw: str) -> str:
    """A function name without compiler suffixes (.cold, .isra.0, .constprop.0)."""
    return raw.split(".", 1)[0]


def _lock_names(body: str) -> list[str]:
    """Lock class names in a line; a name may hold balanced parentheses."""
    # A bad unlock names the lock without its usage bits: "trying to release lock (X) at:".
    names = [m.group(1) for m in _RELEASE_RE.finditer(body)]
    for m in _LOCK_USAGE_RE.finditer(body):
        depth = 0
        for i in range(m.start(), -1, -1):
            depth += (body[i] == ")") - (body[i] == "(")
            if depth == 0:
                if i < m.start() - 1:
                    names.append(body[i + 1:m.start()])
                break
    return names


def _what(msg: str) -> str:
    """The words of a free-form BUG/WARNING message that stay the same run to run.

    Drops the task, addresses, counts and key=value fields that vary
    (`init/1 still has locks held!` -> `still has locks held`), stopping at
    the first such word once some words are kept.
    """
    kept: list[str] = []
    for word in msg.split():
        if _VARYING_RE.search(word):
            if kept:
                break
            continue
        kept.append(word)
    return " ".join(kept).strip(" !:,.-")


@dataclass
class _Report:
    """A report being read: the lines taken so far and what they say."""

    fmt: Format
    match: re.Match[str]
    context: str | None
    kernel: bool
    start: int  # the header's line number
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, text)
    frames: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)
    rip: str = ""
    acquire: list[str] = field(default_factory=list)  # `at:` functions of the locks shown
    phase: str = "head"  # head (before the call trace), trace, after, done
    in_task: bool = False  # inside a 6.x <TASK> ... </TASK> block
    counts: dict[str, int] = field(default_factory=dict)  # own lines seen per phase
    reason: str = ""
    # Contexts whose lines are the report's too: the CPUs asked for an NMI backtrace.
    others: set[str] = field(default_factory=set)

    def owns(self, line: _Line) -> bool:
        """Whether a line belongs to this report's printk context."""
        if self.kernel and not line.kernel:
            return False
        return line.context == self.context or line.context in self.others

    def take(self, n: int, line: _Line) -> None:
        self.lines.append((n, line.text))
        body = line.body
        if self.fmt.nmi and body.startswith("Sending NMI") and (m := _NMI_TO_RE.match(body)):
            # Each CPU prints its own backtrace from the NMI, as context C<cpu>.
            self.others.update(f"C{cpu}" for cpu in _cpus(m.group(1)))
        if "){" in body or "release lock (" in body:
            names = _lock_names(body)
            self.locks.extend(x for x in dict.fromkeys(names) if x not in self.locks)
            if names and _CHAIN_RE.match(body):
                self.chain.append(names[0])
        if not self.rip and ("IP" in body or "PC is" in body or "pc :" in body) \
                and (m := _RIP_RE.search(body)):
            self.rip = _func_name(m.group(1))
        if ", at: " in body and (m := _AT_RE.search(body)):
            self.acquire.append(_func_name(m.group(1)))

    def bump(self, what: str, limit: int) -> bool:
        """Count one more line of a kind; True once there are too many."""
        self.counts[what] = self.counts.get(what, 0) + 1
        return self.counts[what] > limit


def _feed(rep: _Report, n: int, line: _Line) -> bool:
    """Offer one own-context line to a report; False when the report has ended."""
    fmt = rep.fmt
    if fmt.body == "line":
        return False
    if fmt.body == "tail":
        if not re.search(fmt.tail, line.body):
            return False
        rep.take(n, line)
        return True
    if rep.phase == "head":
        return _feed_head(rep, n, line)
    if rep.phase == "trace":
        return _feed_trace(rep, n, line)
    return _feed_after(rep, n, line)


def _feed_head(rep: _Report, n: int, line: _Line) -> bool:
    if rep.bump("head", _HEAD_MAX if rep.fmt.stack else _HEAD_OPTIONAL_MAX):
        if rep.fmt.stack:
            rep.reason = "no call trace"
        return False
    if rep.fmt.more and rep.frames and _CPU_DUMP_RE.match(line.body):
        # Another CPU's dump follows an earlier one: the later one names the report.
        rep.frames, rep.rip = [], ""
    rep.take(n, line)
    if _TRACE_START_RE.search(line.body) or (rep.fmt.trace and re.search(rep.fmt.trace,
                                                                         line.body)):
        rep.phase = "trace"
    elif rep.fmt.end and re.search(rep.fmt.end, line.body):
        rep.phase = "done"
        return False
    return True


def _feed_trace(rep: _Report, n: int, line: _Line) -> bool:
    body = line.body
    frame = _FRAME_RE.match(body)
    if frame is None and not _TRACE_OTHER_RE.match(body):
        if rep.in_task:
            # 6.x closes every trace with </TASK>: a line that is no part of
            # one before it came from elsewhere (a console without caller
            # info). Drop a few; past that the end was lost.
            if rep.bump("noise", _NOISE_MAX):
                rep.reason = "call trace not closed"
                return False
            return True
        rep.phase = "after"
        return _feed_after(rep, n, line)
    if rep.bump("trace", _TRACE_MAX):
        rep.reason = "call trace too long"
        return False
    rep.take(n, line)
    if frame is not None and frame.group(1) is None:
        rep.frames.append(_func_name(frame.group(2)))
    if "<TASK>" in body:
        rep.in_task = True
    if _TRACE_END in body:
        # Complete, unless an end marker or another dump may follow: stop
        # here rather than read on to a next own line that may never come.
        more = bool(rep.fmt.end or rep.fmt.more)
        rep.phase = "after" if more else "done"
        return more
    return True


def _feed_after(rep: _Report, n: int, line: _Line) -> bool:
    """After the trace: WARN, oops and panic still print up to `---[ end ... ]---`."""
    if rep.fmt.more and re.search(rep.fmt.more, line.body):
        rep.phase, rep.in_task, rep.counts = "head", False, {}
        return _feed_head(rep, n, line)
    after_max = rep.fmt.after_max
    if rep.fmt.more and not line.body.strip() and not rep.bump("after", after_max):
        return True  # a blank line may come before the next dump
    if not rep.fmt.end:
        rep.phase = "done"
        return False
    if rep.bump("after", after_max):
        # No end marker came: the lines kept for it are someone else's.
        del rep.lines[len(rep.lines) - rep.counts.get("kept", 0):]
        return False
    rep.take(n, line)
    rep.bump("kept", after_max)  # blank lines above count towards the limit, but are not kept
    if re.search(rep.fmt.end, line.body):
        rep.phase = "done"
        return False
    return True


def _collect(log: _Log, n: int, rep: _Report, taken: set[int]) -> None:
    """Read a report on from its header at line n, through its own context's lines."""
    quiet = 0
    for k in _lines(log, n + 1, n + _SPAN_MAX):
        line = log.line(k)
        if line.body.startswith(BOOT_BANNER):
            break  # the machine started again: nothing after belongs to this report
        if k in taken or not rep.owns(line):
            quiet += 1
            if quiet > _QUIET_MAX:
                # The context fell silent (the task exited): what was printed is all.
                if rep.phase == "trace" and rep.in_task:
                    rep.reason = "call trace not closed"
                break
            continue
        quiet = 0
        row = _header(line.body) if log.hinted(k) else None
        if row is not None and not FORMATS[row].inside:
            if rep.phase == "trace" and rep.in_task:
                rep.reason = "interrupted in its call trace"
            break
        if not _feed(rep, k, line):
            break
    else:
        _cut(rep, log.has(n + _SPAN_MAX))
    if rep.phase == "head" and not rep.fmt.stack and rep.fmt.body == "trace":
        # An optional trace that never came: what followed was not this report.
        del rep.lines[1:]


def _lines(log: _Log, start: int, stop: int) -> Iterator[int]:
    """The numbers of the log's lines from start to stop (excluded)."""
    k = start
    while k < stop and log.has(k):
        yield k
        k += 1


def _cut(rep: _Report, too_long: bool) -> None:
    """The log (or the span allowed) ended while the report was still open."""
    if rep.fmt.body != "trace":
        return
    if too_long:
        rep.reason = "too long"
    elif rep.phase == "trace":
        rep.reason = "console ends in its call trace"
    elif rep.phase == "head" and rep.fmt.stack:
        rep.reason = "console ends before its call trace"


def _banner(log: _Log, n: int, rep: _Report, taken: set[int]) -> None:
    """Take what was printed just before the header: lockdep's `=====` row, or
    WARN's `[ cut here ]` and the message WARN(cond, fmt) prints after it."""
    lookback = range(n - 1, max(n - _BANNER_LOOKBACK, -1), -1)
    before = log.before(n, len(lookback))
    cut_here = _CUT_HERE in before
    if not cut_here and "=====" not in before:
        return  # neither is there: no need to read (and clean) the lines
    # Without a cut-here in reach only lockdep's row is looked for, the first own
    # line: reading on for a WARN message read back the whole lookback, through
    # other contexts' lines, at each lockdep report.
    most = _WARN_MESSAGE_MAX + 1 if cut_here else 1
    own: list[tuple[int, _Line]] = []
    for k in lookback:
        line = log.line(k)
        if not rep.owns(line):
            continue
        if k in taken:  # the end of an earlier report (its header included)
            break
        own.append((k, line))
        if _CUT_HERE in line.body:
            # BUG_ON_DATA_CORRUPTION prints the message first, then BUG()'s cut-here.
            said = _own_before(log, k, rep, taken, lookback.stop)
            if said and any(p.search(said[1].body) for p, _ in MESSAGES):
                own.append(said)
            rep.lines[:0] = [(k, ln.text) for k, ln in reversed(own)]
            return
        if len(own) == most:
            break
    if own and _BANNER_RE.match(own[0][1].body):
        rep.lines.insert(0, (own[0][0], own[0][1].text))


def _own_before(log: _Log, n: int, rep: _Report, taken: set[int],
                stop: int) -> tuple[int, _Line] | None:
    """The report's own line closest before line n (down to stop), if no other report has it."""
    for k in range(n - 1, stop, -1):
        line = log.line(k)
        if rep.owns(line):
            return None if k in taken else (k, line)
    return None


def _pick_func(rep: _Report) -> str:
    """The function the title names: the first source in fmt.where that has one."""
    row_skip = _ROW_SKIP.get(rep.fmt.skip)

    def useful(name: str) -> bool:
        return not _SKIP_RE.fullmatch(name) and not (row_skip and row_skip.fullmatch(name))

    sources = {
        "header": [_func_name(rep.match.groupdict().get("func") or "")],
        "rip": [rep.rip],
        "acquire": rep.acquire,
        "trace": rep.frames,
    }
    for source in rep.fmt.where:
        name = next((f for f in sources[source] if f and useful(f)), "")
        if name:
            return name
    return ""


def _title(rep: _Report, func: str) -> str:
    groups = {k: (v or "") for k, v in rep.match.groupdict().items()}
    if rep.fmt.detail:
        found = (re.search(rep.fmt.detail, _PREFIX_RE.sub("", t, count=1)) for _, t in rep.lines)
        m = next((m for m in found if m), None)
        found_groups = m.groupdict() if m else {}
        groups.update({k: "" for k in re.compile(rep.fmt.detail).groupindex})
        groups.update({k: v or "" for k, v in found_groups.items()})
        if "what" not in groups:  # the detail group that matched names the kind
            groups["what"] = next((k.replace("_", "-") for k, v in found_groups.items() if v),
                                  "undefined-behaviour")
    if "words" in groups:
        words = _what(groups["words"])
        groups["words"] = f": {words}" if words else ""
    template = rep.fmt.title if func else rep.fmt.title.replace(" in {func}", "")
    title = template.format(**{**groups, "func": func})
    return " ".join(title.split())[:_TITLE_MAX]


def _signature(type_: str, title: str, chain: list[str]) -> str:
    # One inversion reached from two places has two titles but one lock cycle.
    if chain:
        return _stable(f"{type_}: " + " ".join(sorted(set(chain))))
    return _stable(f"{type_}: {title}")


# What differs between two sightings of one bug: addresses, numbers (line numbers, PIDs,
# CPUs, sizes) and lockdep's `#N` (the order in which classes of one name registered).
_UNSTABLE = [(re.compile(r"#\d+"), "#N"), (re.compile(r"\b0x[0-9a-fA-F]+\b"), "ADDR"),
             (re.compile(r"\b[0-9a-f]{8,}\b"), "ADDR"), (re.compile(r"\b\d+\b"), "N")]


def _stable(signature: str) -> str:
    """The signature without what one boot or build of the same bug changes."""
    for pattern, kept in _UNSTABLE:
        signature = pattern.sub(kept, signature)
    return signature


def _message_kind(rep: _Report) -> Format:
    """The row a WARN or BUG report's message calls for, else the report's own."""
    if rep.fmt.type in ("warning", "bug"):
        said = [t for k, t in rep.lines if k <= rep.start]
        for pattern, fmt in MESSAGES:
            if any(pattern.search(t) for t in said):
                return fmt
    return rep.fmt


def _finish(rep: _Report) -> Report:
    rep.fmt = _message_kind(rep)
    reason = rep.reason
    if not reason and rep.fmt.stack and not rep.frames:
        reason = "no call trace"
    title = _title(rep, _pick_func(rep))
    return Report(
        type=rep.fmt.type,
        title=title,
        text="\n".join(t for _, t in rep.lines),
        locks=rep.locks,
        frames=rep.frames,
        first_line=rep.lines[0][0],
        last_line=rep.lines[-1][0],
        corrupted=bool(reason),
        reason=reason,
        chain=rep.chain,
        signature=_signature(rep.fmt.type, title, rep.chain),
    )


def parse(log: str | Cleaned) -> list[Report]:
    """Every kernel report in a console log, in the order they start (at most
    REPORTS_MAX of them: scan() also counts what may follow)."""
    return scan(log)[0]


def scan(log: str | Cleaned) -> tuple[list[Report], int]:
    """The log's reports, as parse() gives them, and how many kernel lines that
    may start a report follow the REPORTS_MAX-th report (not read, so not shown).

    Lines of other printk contexts (other tasks, other CPUs) interleaved with
    a report are left out of it; a report the console cut short, or whose
    end got lost, comes back with corrupted=True and a reason.
    """
    # The per-line cache is many small objects: the cyclic GC would rescan them
    # again and again (time per MB grew with the log); none of them form cycles.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        return _scan(log)
    finally:
        if gc_was_on:
            gc.enable()


def _scan(log: str | Cleaned) -> tuple[list[Report], int]:
    lines = _Log(logtext.cleaned(log))
    taken: set[int] = set()
    out: list[Report] = []
    hints = lines.hints()
    for n in hints:
        if n in taken:
            continue
        lines.forget(n - _BANNER_LOOKBACK)
        line = lines.line(n)
        if lines.timed and not line.kernel:
            continue
        row = _header(line.body)
        if row is None:
            continue
        fmt = FORMATS[row]
        rep = _Report(fmt, _HEADERS[row].search(line.body), line.context, line.kernel, n)
        rep.take(n, line)
        _collect(lines, n, rep, taken)
        _banner(lines, n, rep, taken)
        taken.update(k for k, _ in rep.lines)
        out.append(_finish(rep))
        if len(out) == REPORTS_MAX:
            break
    out.sort(key=lambda r: r.first_line)
    return out, _count_hints(lines, hints)


def _count_hints(log: _Log, hints: Iterator[int]) -> int:
    """How many of the remaining hinted lines may hold a report header: kernel
    lines only, not cleaned or matched (a count of a storm need not be exact)."""
    return sum(1 for n in hints if not log.timed or TIMED_RE.search(log.raw(n)))


def attribute(reports: list[Report], markers: list[Marker]) -> list[Report]:
    """Copies of the reports, each with `test` set to the test running at its first line.

    A test runs from its `start` marker to its `end` marker; one that never
    ended (it hung, or the kernel died) runs until the next start, boot or
    done marker, or to the end of the log. None means the boot.
    """
    spans = _spans(markers)
    starts = [s for s, _, _ in spans]
    return [replace(r, test=_test_at(spans, starts, r.first_line)) for r in reports]


def _spans(markers: list[Marker]) -> list[tuple[int, int, str]]:
    spans = []
    open_: Marker | None = None
    for m in markers:
        if m.kind == "end" and open_ is not None and m.test == open_.test:
            spans.append((open_.line, m.line, open_.test or ""))
            open_ = None
        elif m.kind in ("start", "boot", "done"):
            if open_ is not None:
                spans.append((open_.line, m.line - 1, open_.test or ""))
            open_ = m if m.kind == "start" and m.test else None
    if open_ is not None:
        spans.append((open_.line, sys.maxsize, open_.test or ""))
    return spans


def _test_at(spans: list[tuple[int, int, str]], starts: list[int], line: int) -> str | None:
    # Spans come in marker order and never overlap: the candidate is the last one started.
    i = bisect.bisect_right(starts, line) - 1
    return spans[i][2] if i >= 0 and line <= spans[i][1] else None
