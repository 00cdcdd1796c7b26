"""The lines the guest's init prints on the console, and how to read them back.

The init script (templates/init.j2) prints one marker per line, prefixed so a
marker can be found even when kernel messages interleave on the same console:

    @@kpv boot debug_locks=1
    @@kpv start <test> debug_locks=1
    @@kpv result <test> key=value ...
    @@kpv end <test> status=0 elapsed_ms=1234 debug_locks=1
    @@kpv done
"""

import re
from dataclasses import dataclass, field

_MARKER_RE = re.compile(r"@@kpv (boot|start|result|end|done)\b([^\r\n]*)")
_FIELD_RE = re.compile(r"([A-Za-z0-9_.-]+)=(\S*)")


@dataclass(frozen=True)
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


def parse(log: str) -> list[Marker]:
    """Every marker in a console log, in order.

    Line numbers index log.split("\n"), as console.parse's do (splitlines()
    would also break at \r, \x85 and U+2028, which consoles carry). The log
    is searched whole, not split: a line holds at most one marker, its first.
    """
    out: list[Marker] = []
    line, pos = 0, 0
    for m in _MARKER_RE.finditer(log):
        line += log.count("\n", pos, m.start())
        pos = m.start()
        if out and out[-1].line == line:
            continue
        marker = parse_line(m.group(), line)
        if marker is not None:
            out.append(marker)
    return out
