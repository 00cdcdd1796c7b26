"""How each boot in a console log ended, when init did not finish it.

A guest that resets without a word (a triple fault, a stray reboot) or
freezes without a watchdog speaking leaves no kernel report behind: only
the absence of init's `done` marker says something went wrong. ending()
turns that absence into a report of its own, so a dashboard shows it as a
failure of the test that was running, next to the kernel's own reports.

    unexpected-reboot  "unexpected kernel reboot": the kernel said it was
                       restarting, or QEMU (run with -no-reboot) exited
    console-stopped    "console stopped": the log ends, or kpv killed QEMU,
                       with init still running

A boot that ends in a panic (oops in init included: it panics) needs no
such report: the panic is the report. A log without kernel banner or boot
marker is an excerpt, and its end says nothing.
"""

from __future__ import annotations

import bisect
import re
from itertools import pairwise

from pipeline.console import BOOT_BANNER, Report
from pipeline.markers import Marker

REBOOT = "unexpected-reboot"
STOPPED = "console-stopped"

# The kernel's first line: where a boot starts in a log of several. Only as a
# kernel line, after a timestamp: a test that cats /proc/version starts no
# boot. The prefix may follow firmware text on the same line (its escapes
# gone), so it is checked backwards from each (rare) banner: a regex led by
# `\[` would be tried at every line of the log (5x slower).
_BANNER_RE = re.compile(re.escape(BOOT_BANNER) + r"\d")
# \Z, not $: a timestamp alone on the line before is not the banner's own.
_STAMPED_RE = re.compile(r"\[ *\d+\.\d+\](?: ?\[ *[CT]\d+\])? ?\Z")
_STAMP_MAX = 40  # characters of the longest prefix, `[12345.123456][ T12345] `
# What kernel_restart() and kernel_power_off() print on the way down.
_GOING_DOWN_RE = re.compile(r"reboot: (?:Restarting system|Power down|machine restart)")
# A line the guest printed: a kernel line or one of init's markers (firmware
# text of the next boot does not count).
_GUEST_LINE_RE = re.compile(r"\[ *\d+\.\d+\]|@@kpv ")
_ENDS_CONSOLE = ("panic",)  # report types after which the console ends on purpose
_TAIL_LINES = 20  # console lines shown with the report: what was printed last


def ending(log: str, marks: list[Marker], reports: list[Report],
           qemu_exited: bool | None = None, note: str = "") -> list[Report]:
    """One report per boot in the log that started init and never printed `done`.

    qemu_exited says how the last boot ended when the caller knows (kpv run
    does): True if QEMU exited on its own (a reset, with -no-reboot), False
    if it was killed. None (a log alone) decides from what the kernel printed.
    note, the host's own word on the last boot, goes into that boot's report.
    """
    bounds = _boots(log)
    boots = [m.line for m in marks if m.kind == "boot"]
    dones = [m.line for m in marks if m.kind == "done"]
    panics = sorted(r.first_line for r in reports if r.type in _ENDS_CONSOLE)
    out = []
    for i, ((first, start), (end, stop)) in enumerate(pairwise(bounds)):
        if not _any_in(boots, first, end) or _any_in(dones, first, end) \
                or _any_in(panics, first, end):
            continue
        last = i == len(bounds) - 2
        out.append(_report(first, log[start:stop].split("\n"), qemu_exited if last else None,
                           note if last else ""))
    return out


def _boots(log: str) -> list[tuple[int, int]]:
    """(line, offset) where each boot starts, and past the last line: a boot runs from
    one kernel banner to the next (the first from the top of the log)."""
    bounds = [(0, 0)]
    line = pos = seen = 0
    for m in _BANNER_RE.finditer(log):
        if not _STAMPED_RE.search(log, max(0, m.start() - _STAMP_MAX), m.start()):
            continue
        # No newline since the last banner: same line as that one. Linear on any log.
        newline = log.rfind("\n", max(pos, seen), m.start())
        seen = m.end()
        if newline >= 0:
            begin = newline + 1
            line += log.count("\n", pos, begin)
            pos = begin
            bounds.append((line, begin))
    lines = line + log.count("\n", pos) + (0 if log.endswith("\n") or not log else 1)
    bounds.append((lines, len(log)))
    return bounds


def _any_in(lines: list[int], first: int, end: int) -> bool:
    """Whether the sorted lines hold one in [first, end)."""
    i = bisect.bisect_left(lines, first)
    return i < len(lines) and lines[i] < end


def _report(first: int, lines: list[str], qemu_exited: bool | None, note: str) -> Report:
    """The report for a boot whose lines (numbered from first) end without `done`."""
    end = len(lines) - (lines[-1] == "")
    while end > 1 and not _GUEST_LINE_RE.search(lines[end - 1]):
        end -= 1
    tail = [t.rstrip("\r") for t in lines[max(0, end - _TAIL_LINES):end]]
    said_reboot = any(_GOING_DOWN_RE.search(t) for t in tail)
    if qemu_exited or said_reboot:
        type_, title = REBOOT, "unexpected kernel reboot"
        why = ("the kernel restarted" if said_reboot
               else "QEMU exited (the guest reset)") + " before init finished"
    else:
        type_, title = STOPPED, "console stopped"
        why = ("the guest was stopped (killed by kpv)" if qemu_exited is False
               else "the log ends") + " before init finished"
    if note:
        why += f" ({note})"
    last = first + end - 1
    return Report(type=type_, title=title, text="\n".join([f"{title}: {why}", *tail]),
                  first_line=last, last_line=last, reason="", signature=f"{type_}: {title}")
