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

from pipeline import logtext
from pipeline.console import BOOT_BANNER, Report
from pipeline.logtext import Cleaned, Text
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
_GUEST_LINE = r"\[ *\d+\.\d+\]|@@kpv "
# The last such line of a stretch: the greedy `.*` takes all, then gives back to the last.
_LAST_GUEST_RE = re.compile(rf"(?s:.*)({_GUEST_LINE})")
_ENDS_CONSOLE = ("panic",)  # report types after which the console ends on purpose
_TAIL_LINES = 20  # console lines shown with the report: what was printed last


def ending(log: str | Cleaned, marks: list[Marker], reports: list[Report],
           qemu_exited: bool | None = None, note: str = "") -> list[Report]:
    """One report per boot in the log that started init and never printed `done`.

    qemu_exited says how the last boot ended when the caller knows (kpv run
    does): True if QEMU exited on its own (a reset, with -no-reboot), False
    if it was killed. None (a log alone) decides from what the kernel printed.
    note, the host's own word on the last boot, goes into that boot's report.
    """
    log = logtext.cleaned(log)
    bounds = _boots(log)
    boots = [m.line for m in marks if m.kind == "boot"]
    dones = [m.line for m in marks if m.kind == "done"]
    panics = sorted(r.first_line for r in reports if r.type in _ENDS_CONSOLE)
    unfinished = [(i, first, start, stop)
                  for i, ((first, start), (end, stop)) in enumerate(pairwise(bounds))
                  if _any_in(boots, first, end) and not _any_in(dones, first, end)
                  and not _any_in(panics, first, end)]
    lasts = _last_guest_lines(log.reader(), [b[1:] for b in unfinished])
    text = log.reader()
    out = []
    for (i, first, _, _), last in zip(unfinished, lasts, strict=True):
        final = i == len(bounds) - 2
        tail = [t.rstrip("\r") for t in text.lines(max(first, last - _TAIL_LINES + 1), last + 1)]
        out.append(_report(last, tail, qemu_exited if final else None, note if final else ""))
    return out


def _boots(log: Cleaned) -> list[tuple[int, int]]:
    """(line, offset) where each boot starts, and past the last line: a boot runs from
    one kernel banner to the next (the first from the top of the log)."""
    bounds = [(0, 0)]
    pos = seen = 0
    text = log.reader()
    for hit in text.matches(_BANNER_RE):
        if not text.search(_STAMPED_RE, max(hit.line_start, hit.start - _STAMP_MAX), hit.start):
            continue
        # The banner's line starts after the last banner seen: a line of its own. The
        # prefix, with no line end, is all on the banner's line.
        starts_line = hit.line_start > max(pos, seen)
        seen = hit.end
        if starts_line:
            pos = hit.line_start
            bounds.append((hit.line, pos))
    bounds.append((log.lines, log.chars))
    return bounds


def _last_guest_lines(log: Text, boots: list[tuple[int, int, int]]) -> list[int]:
    """For each boot (first line, its offset, end offset), in order, the line its
    report stands at: the last line the guest printed past the first (else that one)."""
    lasts = []
    for first, start, stop in boots:
        log.hold(start)  # what comes before it is only read past
        _, end = log.line(start)
        last = log.last(_LAST_GUEST_RE, end + 1, stop, first + 1) if end < stop else -1
        lasts.append(last if last >= 0 else first)
    return lasts


def _any_in(lines: list[int], first: int, end: int) -> bool:
    """Whether the sorted lines hold one in [first, end)."""
    i = bisect.bisect_left(lines, first)
    return i < len(lines) and lines[i] < end


def _report(last: int, tail: list[str], qemu_exited: bool | None, note: str) -> Report:
    """The report for a boot that ends without `done`: tail, its lines up to line last."""
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
    return Report(type=type_, title=title, text="\n".join([f"{title}: {why}", *tail]),
                  first_line=last, last_line=last, reason="", signature=f"{type_}: {title}")
