"""pipeline.reach: a test whose path did not run is named, with what was missing."""

import pytest

from pipeline import reach

MIGRATE = {
    "nodes": "2", "vm_pgmigrate_success": "120", "mp_moved": "500", "mp_confirmed": "480",
    "migrate_pages_ops": "3", "mbind_ops": "3", "compact_ops": "2",
    "vm_thp_collapse_alloc": "2", "vm_thp_split_page": "2", "ksm_full_scans": "4",
    "ksm_pages_sharing": "255", "opt_thp": "1", "opt_ksm": "1", "opt_compact_ms": "500",
}
FORK = {"fork_ops": "73", "cow_ops": "100", "max_procs": "33", "opt_width": "8",
        "opt_depth": "2", "opt_wide": "32", "opt_relay": "8", "rounds": "3",
        "wide_rounds": "1", "relay_generations": "8"}
MMAP = {"mprotect_ops": "5", "mremap_ops": "5", "remap_ops": "5", "dontneed_ops": "5",
        "max_map_count": "600", "opt_size_mb": "8", "opt_cell_pages": "8"}
STACK = {"expansions": "9", "max_depth_kb": "4000", "descent_ops": "8", "exec_ops": "1",
         "opt_descent_mb": "4", "opt_exec_every": "4", "opt_procs": "1", "opt_threads": "2",
         "growsdown_ops": "10", "max_threads": "2", "neighbours_accessible": "5"}
RACE = {"nodes": "2", "vm_pgmigrate_success": "9", "overlap_rounds": "3",
        "mprotect_ops": "1", "mremap_ops": "1", "growsdown_ops": "1", "stack_expansions": "32",
        "fork_ops": "1", "max_procs": "5", "opt_width": "4"}


@pytest.mark.parametrize("test, fields", [
    ("migrate", MIGRATE), ("fork", FORK), ("mmap", MMAP), ("stack", STACK), ("race", RACE),
    ("stress-ng-mmap", {"bogo_ops": "12"}),
])
def test_a_run_that_reached_everything_passes(test, fields):
    assert reach.check(test, [fields]) == ""


def test_migration_on_one_node_is_not_reached():
    problem = reach.check("migrate", [{**MIGRATE, "nodes": "1", "vm_pgmigrate_success": "0"}])
    assert "nodes=1, need >= 2" in problem
    assert "vm_pgmigrate_success=0, need >= 1: pages migrated" in problem


def test_counter_the_kernel_lacks_is_said_so():
    problem = reach.check("migrate", [{**MIGRATE, "vm_thp_split_page": "na"}])
    assert problem == ("vm_thp_split_page=na: the kernel lacks this counter "
                       "(THPs split (/proc/vmstat thp_split_page))")


def test_parts_the_job_turned_off_are_not_required():
    off = {**MIGRATE, "opt_thp": "0", "opt_ksm": "0", "opt_compact_ms": "0",
           "vm_thp_collapse_alloc": "0", "vm_thp_split_page": "0", "ksm_full_scans": "0",
           "ksm_pages_sharing": "0", "compact_ops": "0"}
    assert reach.check("migrate", [off]) == ""
    assert "ksm_full_scans=0" in reach.check("migrate", [{**off, "opt_ksm": "1"}])


def test_thresholds_follow_the_program_options():
    assert "max_procs=20, need >= 33" in reach.check("fork", [{**FORK, "max_procs": "20"}])
    deep_only = {**FORK, "rounds": "1", "wide_rounds": "0", "relay_generations": "0"}
    assert "max_procs=8, need >= 9" in reach.check("fork", [{**deep_only, "max_procs": "8"}])
    assert reach.check("fork", [{**deep_only, "max_procs": "1", "opt_depth": "0"}]) == ""
    assert "relay_generations=0" in reach.check("fork", [{**FORK, "relay_generations": "0"}])
    # 8 MiB in cells of 8 pages: at least one VMA per cell, 256.
    assert "max_map_count=200, need >= 256" in reach.check("mmap",
                                                           [{**MMAP, "max_map_count": "200"}])
    assert "max_depth_kb=100, need >= 2048" in reach.check("stack",
                                                           [{**STACK, "max_depth_kb": "100"}])


def test_exec_is_required_only_once_enough_descents_ran():
    few = {**STACK, "exec_ops": "0", "descent_ops": "3"}
    assert reach.check("stack", [few]) == ""
    assert "exec_ops=0" in reach.check("stack", [{**few, "descent_ops": "8"}])


def test_every_repeat_must_reach_and_the_failing_run_is_named():
    bad = {**MMAP, "mremap_ops": "0"}
    assert reach.check("mmap", [MMAP, bad, MMAP]).startswith("run 2 of 3: mremap_ops=0")


def test_missing_field_and_missing_result_line():
    assert "mremap_ops missing from the result line" in reach.check(
        "mmap", [{k: v for k, v in MMAP.items() if k != "mremap_ops"}])
    assert reach.check("race", []) == "it printed no result line"


def test_tests_without_rules_always_pass():
    assert reach.check("idle", []) == ""
    assert reach.check("nasty", []) == ""
