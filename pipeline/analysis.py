"""A boot's console, read whole: init's markers, the kernel's reports, how it ended.

The one path from cleaned console text to attributed reports, shared by
`kpv parse` and by each cell of `kpv run`, so both say the same of one log.
Each of the three reads the log on its own, a piece at a time (logtext).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import console, endings, logtext, markers
from pipeline.console import Report
from pipeline.logtext import Cleaned
from pipeline.markers import Marker


@dataclass(frozen=True)
class Analysis:
    reports: list[Report]  # in console order, each attributed to its test or the boot (None)
    markers: list[Marker]
    unread: int = 0  # lines that may start a report, past console.REPORTS_MAX reports
    unread_markers: int = 0  # `@@kpv ` past markers.MARKERS_MAX markers


def analyse(text: str | Cleaned, qemu_exited: bool | None = None, note: str = "") -> Analysis:
    """Reports of a cleaned console log; qemu_exited and note as for endings.ending."""
    log = logtext.cleaned(text)
    marks, unread_markers = markers.scan(log)
    found, unread = console.scan(log)
    found += endings.ending(log, marks, found, qemu_exited, note)
    found.sort(key=lambda r: r.first_line)
    return Analysis(console.attribute(found, marks), marks, unread, unread_markers)
