"""The lines the guest's init prints on the console, and how to read them back.

The init script (templates/init.j2) prints one marker per line, prefixed so a
marker can be found even when kernel messages interleave on the same console:

    @@kpv boot debug_locks=1
    @@kpv start <test> debug_locks=1
    @@kpv result <test> key=value ...
    @@kpv end <test> status=0 elapsed_ms=1234 debug_locks=1
    @@kpv done

The serial driver sends the guest's output a FIFO-load (16 bytes) at a time,
and printk may write a whole kernel line between two loads. A marker cut that
way is joined again: its rest is the next line that is not a kernel line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline import logtext
from pipeline.logtext import Cleaned, Text

_MARKER_RE = re.compile(r"@@kpv (boot|start|result|end|done)\b([^\r\n]*)")
_FIELD_RE = re.compile(r"([A-Za-z0-9_.-]+)=(\S*)")
# A kernel line's start: printk's optional syslog level, then its timestamp.
PRINTK_STAMP = r"(?:<\d+>)?\[ *\d+\.\d+\]"
_PRINTK_RE = re.compile(PRINTK_STAMP)
# A marker, or the start of one that a kernel line cut short ("@@kp[  2.1]...").
_START_RE = re.compile(
    rf"@@kpv (?:boot|start|result|end|done)\b|@@?(?:k(?:p(?:v(?: [a-z]*)?)?)?)?(?={PRINTK_STAMP})")
_JOIN_MAX = 2000  # kernel lines looked past for a cut marker's rest (a long splat)
# Markers read per log. A boot prints a handful (the seeded-bug corpus: 40 in ten
# boots, so this many is ~500 MB of such consoles); each costs ~5 us and ~200
# bytes, many times the line it came from. Past this many (a log of nothing but
# markers, a test printing them in a loop) they are only counted, so time and
# memory stay linear in the log.
MARKERS_MAX = 100_000


# slots: no __dict__ per marker, a third of its size.
@dataclass(frozen=True, slots=True)
class Marker:
    kind: str  # boot, start, result, end or done
    test: str | None  # the test it names; None for boot and done
    fields: dict[str, str] = field(default_factory=dict)  # key=value pairs
    line: int = 0  # 0-based line number in the console log


def parse_line(text: str, line: int = 0) -> Marker | None:
    """The marker on one console line, or None when the line holds none."""
    m = _MARKER_RE.search(text)
    if m is None:
        return None
    kind, rest = m.group(1), m.group(2)
    words = rest.split()
    test = None
    if kind in ("start", "result", "end") and words and "=" not in words[0]:
        test = words[0]
    return Marker(kind, test, dict(_FIELD_RE.findall(rest)), line)


def parse(log: str | Cleaned) -> list[Marker]:
    """Every marker in a console log, in order, each at the line it starts on
    (at most MARKERS_MAX of them: scan() also counts what may follow)."""
    return scan(log)[0]


def scan(log: str | Cleaned) -> tuple[list[Marker], int]:
    """The log's markers, as parse() gives them, and how many `@@kpv ` follow the
    MARKERS_MAX-th one (not read: a count of a storm need not be exact).

    Line numbers index log.split("\n"), as console.parse's do (splitlines()
    would also break at \r, \x85 and U+2028, which consoles carry). The log
    is searched, not split into lines: a line holds at most one marker, its first.
    """
    out: list[Marker] = []
    text = logtext.cleaned(log).reader()
    rests = _Rests(text)
    for hit in text.matches(_START_RE):
        if out and out[-1].line == hit.line:
            continue
        marker = parse_line(rests.joined(hit.start), hit.line)
        if marker is not None:
            if len(out) == MARKERS_MAX:
                return out, text.count_on("@@kpv ", hit.start)
            out.append(marker)
    return out, 0


class _Rests:
    """Joins a cut marker to its rest: the next line that is not a kernel line.

    The kernel lines passed last time are remembered, so a log of many cuts
    (or of `@` before timestamps) is read past once, not once per cut.
    """

    def __init__(self, log: Text) -> None:
        self.log = log
        self.passed = (0, 0)  # offsets [from, to) known to hold only kernel lines

    def joined(self, start: int) -> str:
        """The marker text from start to its line's end, and its rest when a
        kernel line cut in (none found within _JOIN_MAX lines: left as cut)."""
        text, end = self.log.line(start)
        parts = []
        while (cut := _PRINTK_RE.search(text)) is not None:
            parts.append(text[:cut.start()])
            at = self._past_kernel_lines(end + 1)
            if at >= self.log.chars:
                return "".join(parts)
            text, end = self.log.line(at)
            if _START_RE.match(text) or _PRINTK_RE.match(text):
                return "".join(parts)  # a marker of its own, or no rest in reach
        parts.append(text)
        return "".join(parts)

    def _past_kernel_lines(self, at: int) -> int:
        lo, hi = self.passed
        start, at = at, hi if lo <= at < hi else at
        for _ in range(_JOIN_MAX):
            text, end = self.log.line(at)
            if at >= self.log.chars or not _PRINTK_RE.match(text):
                break
            at = end + 1
        self.passed = (start, at)
        return at
