"""The lock order a tree documents (mm/rmap.c, mm/filemap.c of 6.1 and 6.12), lockdep's
class names matched against it, and lock dependencies from real lockdep reports."""

import shutil
from pathlib import Path

import pytest

from pipeline import console, sanitize
from pipeline.kernel import lockorder
from pipeline.run import lockdeps

from .test_junit import schema  # noqa: F401 (a fixture)

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["6.1", "6.12"])
def tree(request, tmp_path) -> Path:
    (tmp_path / "mm").mkdir()
    for name in ("rmap", "filemap"):
        shutil.copy(DATA / "lockorder" / f"{request.param}-{name}.c",
                    tmp_path / "mm" / f"{name}.c")
    return tmp_path


def test_the_mm_order_reads_as_lockdep_names_it(tree):
    order = lockorder.documented(tree)
    # rmap.c: mmap_lock, then i_mmap_rwsem, then the anon_vma lock, then page_table_lock.
    for held, taken in (("&mm->mmap_lock", "&mapping->i_mmap_rwsem"),
                        ("&mapping->i_mmap_rwsem", "&anon_vma->rwsem"),
                        ("&anon_vma->rwsem", "&mm->page_table_lock"),
                        ("&anon_vma->rwsem", "ptlock_ptr(page)"),
                        ("&mm->page_table_lock", "&lruvec->lru_lock")):
        assert not lockorder.against(order, held, taken), (held, taken)
        assert lockorder.against(order, taken, held), (taken, held)
    # Not ordered against each other: nothing to say.
    assert not lockorder.against(order, "&mm->page_table_lock", "ptlock_ptr(page)")
    assert lockorder.mentioned(order, "&(&mm->page_table_lock)->rlock")
    assert not lockorder.mentioned(order, "&mm->anon_vma_chain_lock")
    assert not lockorder.mentioned(order, "kpv_canary_forkmigration")


def test_continued_annotations_are_not_locks(tree):
    keys = {k for pair in lockorder.documented(tree) for k in pair}
    # "(widely used, in set_page_dirty,\n in arch-dependent flush_dcache_mmap_lock, ...)"
    assert "in" not in keys and "within" not in keys and "arch" not in keys
    assert {"i_pages", "list_lock", "sb_lock", "tasklist_lock"} <= keys


def test_a_tree_without_the_comments_documents_nothing(tmp_path):
    assert lockorder.documented(tmp_path) == []


def test_keys_of_lockdep_class_names():
    assert lockorder.key("&anon_vma->rwsem/1") == "anon_vma.rwsem"
    assert lockorder.key("&(&anon_vma->lock)->rlock") == "anon_vma.lock"  # 2.6.3x
    assert lockorder.key("sb_writers#3") == "sb_writers"
    assert lockorder.key("&mm->page_table_lock") == "page_table_lock"


def _reports(name: str) -> list[console.Report]:
    return console.parse(sanitize.clean((DATA / "console" / name).read_bytes()))


def test_v1s_invalid_wait_context_takes_the_anon_vma_lock_against_the_order(tree):
    reports = _reports("v1-6.1-boot-sleep-in-atomic-and-invalid-wait.log")
    wait = next(r for r in reports if r.type == "lockdep-invalid-wait-context")
    assert lockdeps.edges(wait) == [("&mm->mmap_lock", "&anon_vma->rwsem"),
                                    ("&mm->page_table_lock", "&anon_vma->rwsem")]
    order = lockorder.documented(tree)
    assert [lockorder.against(order, *e) for e in lockdeps.edges(wait)] == [False, True]
    # Sleeping in atomic names no lock being taken: no edge.
    assert lockdeps.edges(next(r for r in reports if r.type == "sleep-in-atomic")) == []


def test_a_circular_report_gives_its_held_locks_before_the_one_taken():
    (r, *_) = _reports("canary-6.1-forkmigration-vcpus-1-four-boots.log")
    assert lockdeps.edges(r) == [("sb_writers#3", "kpv_canary_forkmigration"),
                                 ("&anon_vma->rwsem", "kpv_canary_forkmigration")]


def test_v1s_edge_against_the_order_is_in_its_comparison_and_junit(tree, schema):  # noqa: F811
    from junitparser import JUnitXml

    from pipeline.report import junit
    from pipeline.results import Run, Suite
    from pipeline.run import cell, verdict

    from .test_verdict import boot_of, boots

    def boot_suite(rev: str, log: str) -> Suite:
        b, reports, _ = boot_of(boots(log)[0])
        return Suite(cell.suite_name(rev, 2), rev, 2, cases=[cell.boot_case([(b, reports)])])

    v1 = Suite("kpv.v1", "v1", None,
               lock_order=[list(p) for p in lockorder.documented(tree)])
    run = Run("anon-vma", "2026-12-03T12:00:00", {"gate": "new"},
              [boot_suite("baseline", "baseline-6.1-boot-clean.log"), v1,
               boot_suite("v1", "v1-6.1-boot-sleep-in-atomic-and-invalid-wait.log")])
    run.comparison = verdict.comparisons(run)
    deps = run.comparison["v1"].lock_dependencies
    edge = {"from": "&mm->page_table_lock", "to": "&anon_vma->rwsem"}
    assert deps.against_documented_order == [edge] and edge in deps.new_edges
    assert deps.undocumented_classes == [] and deps.incomplete
    xml = junit.render(run)
    schema.validate(xml.decode())
    (order,) = [c for s in JUnitXml.fromstring(xml) for c in s
                if s.name == "kpv.v1.changes" and c.name == "lock_order"]
    assert not order.is_passed
    assert order.result[0].message == ("&mm->page_table_lock held while taking "
                                       "&anon_vma->rwsem: against the lock order the tree "
                                       "documents")
