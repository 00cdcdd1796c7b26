"""Kernel reports in a console log: what, where, which test.

parse(log) is pure: no I/O, never raises on any input.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
