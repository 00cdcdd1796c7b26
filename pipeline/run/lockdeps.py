"""Lock dependencies a revision added, from the lockdep reports of its cells.

A lockdep report names the lock being taken and the locks held at that moment:
each held lock taken before the new one is a dependency (an edge held -> taken).
Edges are compared with the baseline's and with the order the revision's tree
documents (pipeline.kernel.lockorder), so an edge against that order is flagged
even when lockdep reported something else about it (v1's invalid wait context
takes the anon_vma lock under page_table_lock, the documented order reversed).
Only what reports show is seen: the result says so (`source`, `incomplete`).
"""

from __future__ import annotations

import re

from pipeline.console import Report
from pipeline.kernel import lockorder
from pipeline.results import LockDependencies, Suite

# lockdep's `... is trying to acquire lock:` (or `to lock:`), then the class on the next
# line; held locks as ` #0: ffff888003a0e0a8 (&mm->mmap_lock){++++}-{3:3}, at: ...`.
_TAKING = re.compile(r"is trying to (?:acquire )?lock:")
_CLASS = re.compile(r"[0-9a-f]{8,} \((.+?)\)\{")
_HELD = re.compile(r"#\d+: [0-9a-f]{8,} \((.+?)\)\{")
SOURCE = "reports: the locks held when lockdep reported, and the one being taken"


def edges(report: Report) -> list[tuple[str, str]]:
    """(held, taken) for each lock held when the report's lock was being taken."""
    lines = report.text.splitlines()
    taken = next((m.group(1) for i, line in enumerate(lines) if _TAKING.search(line)
                  for m in [_CLASS.search(lines[i + 1] if i + 1 < len(lines) else "")] if m),
                 None)
    if taken is None:
        return []
    held = dict.fromkeys(m.group(1) for line in lines if (m := _HELD.search(line)))
    return [(h, taken) for h in held if h != taken]


def compare(base: list[Suite], cells: list[Suite],
            order: list[tuple[str, str]]) -> LockDependencies:
    """The revision's report edges against the baseline's and the documented order."""
    ours, theirs = _edges(cells), _edges(base)
    new = [e for e in ours if e not in theirs]
    known = {c for e in theirs for c in e}
    classes = list(dict.fromkeys(c for e in new for c in e))
    return LockDependencies(
        source=SOURCE,
        new_classes=[c for c in classes if c not in known],
        new_edges=[_edge(e) for e in new],
        gone_edges=[_edge(e) for e in theirs if e not in ours],
        against_documented_order=[_edge(e) for e in ours if lockorder.against(order, *e)],
        undocumented_classes=[c for c in classes if not lockorder.mentioned(order, c)],
        # Reports show the locks of a moment, not lockdep's whole graph.
        incomplete=True,
    )


def _edges(suites: list[Suite]) -> list[tuple[str, str]]:
    found: dict[tuple[str, str], None] = {}
    for s in suites:
        for c in s.cases:
            for r in c.reports:
                found.update(dict.fromkeys(edges(r)))
    return list(found)


def _edge(e: tuple[str, str]) -> dict[str, str]:
    return {"from": e[0], "to": e[1]}
