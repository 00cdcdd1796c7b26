"""Proof of reach: did a stress test's kernel path actually run?

A stress test that never reached its path is a green light that means
nothing, so each test names the fields of its result line (its own counts,
and the kernel's counters it read: /proc/vmstat, KSM's full_scans) that must
show the path ran. `check` returns what was not reached, or "" when all was.

Thresholds follow the program's own options, echoed in the result line as
opt_<name>=<value>: a part the job turned off (--thp 0, --ksm 0) is not
required.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Fields = dict[str, str]


@dataclass(frozen=True)
class Need:
    field: str  # a key of the result line
    what: str  # what a non-zero value proves, for the message
    minimum: Callable[[Fields], int] = lambda f: 1  # smallest acceptable value
    when: Callable[[Fields], bool] = lambda f: True  # only then is it needed


def _opt(f: Fields, name: str, default: int = 0) -> int:
    try:
        return int(f.get(f"opt_{name}", default))
    except ValueError:
        return default


def _int(f: Fields, key: str) -> int:
    try:
        return int(f.get(key, "0"))
    except ValueError:
        return 0


def _two_nodes(f: Fields) -> int:
    return 2


_MIGRATION = [
    Need("nodes", "NUMA nodes in the guest (nothing moves with one)", _two_nodes),
    Need("vm_pgmigrate_success", "pages migrated (/proc/vmstat pgmigrate_success)"),
]

RULES: dict[str, list[Need]] = {
    "fork": [
        Need("fork_ops", "fork() calls"),
        Need("cow_ops", "COW writes to shared pages"),
        Need("max_procs", "processes alive at once (the root and one level of children)",
             lambda f: _opt(f, "width") + 1,
             lambda f: _opt(f, "depth") >= 1 and _int(f, "wide_rounds") == 0),
        Need("max_procs", "processes alive at once (the root and a wide round's children)",
             lambda f: _opt(f, "wide") + 1, lambda f: _int(f, "wide_rounds") > 0),
        # Rounds take turns: deep, wide, relay. A run too short for a shape
        # to come round is not asked for it.
        Need("wide_rounds", "rounds of a wide tree",
             when=lambda f: _opt(f, "wide") > 0 and _int(f, "rounds") >= 2),
        Need("relay_generations", "generations of a relay chain",
             when=lambda f: _opt(f, "relay") > 0 and _int(f, "rounds") >= 3),
    ],
    "stack": [
        Need("expansions", "stack descents (expand_downwards page by page)"),
        Need("max_depth_kb", "KiB of stack growth, at least half of --descent-mb",
             lambda f: _opt(f, "descent_mb") * 512),
        Need("growsdown_ops", "MAP_GROWSDOWN mappings grown page by page",
             when=lambda f: _opt(f, "threads") > 0),
        Need("max_threads", "threads growing stacks at once in one process",
             lambda f: _opt(f, "threads"), lambda f: _opt(f, "threads") > 0),
        Need("neighbours_accessible", "grow cycles with an accessible neighbour at the guard gap",
             when=lambda f: _int(f, "growsdown_ops") >= 2),
        Need("exec_ops", "fork+exec of a fresh stack",
             when=lambda f: _opt(f, "exec_every") > 0
             and _int(f, "descent_ops") >= _opt(f, "exec_every") * _opt(f, "procs")),
    ],
    "mmap": [
        Need("mprotect_ops", "mprotect split+merge pairs"),
        Need("mremap_ops", "mremap away+back pairs"),
        Need("remap_ops", "munmap+MAP_FIXED remaps"),
        Need("dontneed_ops", "MADV_DONTNEED calls"),
        Need("max_map_count", "VMAs in one process (peak map_count), one per cell at least",
             lambda f: _opt(f, "size_mb") * 256 // max(_opt(f, "cell_pages"), 1)),
    ],
    "migrate": [
        *_MIGRATION,
        Need("mp_moved", "pages move_pages() reported moved"),
        Need("mp_confirmed", "moved pages the query call found on their target node"),
        Need("migrate_pages_ops", "migrate_pages() calls"),
        Need("mbind_ops", "mbind(MPOL_MF_MOVE_ALL) calls"),
        Need("compact_ops", "writes to /proc/sys/vm/compact_memory",
             when=lambda f: _opt(f, "compact_ms") > 0),
        Need("vm_thp_collapse_alloc", "THPs collapsed (/proc/vmstat thp_collapse_alloc)",
             when=lambda f: _opt(f, "thp") == 1),
        Need("vm_thp_split_page", "THPs split (/proc/vmstat thp_split_page)",
             when=lambda f: _opt(f, "thp") == 1),
        Need("ksm_full_scans", "full KSM scans (/sys/kernel/mm/ksm/full_scans)",
             when=lambda f: _opt(f, "ksm") == 1),
        Need("ksm_pages_sharing", "pages KSM merged while the tree mapped them",
             when=lambda f: _opt(f, "ksm") == 1),
    ],
    "race": [
        *_MIGRATION,
        Need("overlap_rounds", "rounds in which walkers and churners both worked"),
        Need("mprotect_ops", "mprotect split+merge pairs"),
        Need("mremap_ops", "mremap away+back pairs"),
        Need("growsdown_ops", "MAP_GROWSDOWN grow cycles"),
        Need("stack_expansions", "stack expansions (faults below a GROWSDOWN VMA)"),
        Need("fork_ops", "short-lived children"),
        Need("max_procs", "processes alive at once (the root and every churner)",
             lambda f: _opt(f, "width") + 1),
    ],
}
_STRESS_NG = [Need("bogo_ops", "stress-ng bogo operations")]


def rules(test: str) -> list[Need] | None:
    """The needs of a test by its guest name; None for a test without any (idle)."""
    if test.startswith("stress-ng-"):
        return _STRESS_NG
    return RULES.get(test)


def check(test: str, results: list[Fields]) -> str:
    """What `test` did not reach in any of its runs (one result line each), or ""."""
    needs = rules(test)
    if needs is None:
        return ""
    if not results:
        return "it printed no result line"
    for n, fields in enumerate(results, 1):
        problem = _check_one(needs, fields)
        if problem:
            return f"run {n} of {len(results)}: {problem}" if len(results) > 1 else problem
    return ""


def _check_one(needs: list[Need], f: Fields) -> str:
    missing = []
    for need in needs:
        if not need.when(f):
            continue
        want = need.minimum(f)
        raw = f.get(need.field)
        if raw is None:
            missing.append(f"{need.field} missing from the result line ({need.what})")
        elif raw == "na":
            missing.append(f"{need.field}=na: the kernel lacks this counter ({need.what})")
        else:
            try:
                value = float(raw)
            except ValueError:
                missing.append(f"{need.field}={raw!r} is not a number ({need.what})")
                continue
            if value < want:
                missing.append(f"{need.field}={raw}, need >= {want}: {need.what}")
    return "; ".join(missing)
