"""Patches that survive only as quotes in a mail thread: the 2010 anon_vma RFC thread."""

import json
from pathlib import Path

import pytest

from pipeline import quoted, series, udiff
from pipeline.errors import UserError
from tests.series_util import run_kpv

# The April 2010 RFC thread as the public linux-kernel archive has it.
THREAD = Path(__file__).resolve().parent / "data" / "series" / "anon-vma-rfc-thread.txt"
V2_FILES = ["include/linux/mm_types.h", "include/linux/rmap.h", "kernel/fork.c",
            "mm/init-mm.c", "mm/mmap.c", "mm/rmap.c"]


def test_mel_gormans_quote_of_v2_is_recovered_whole():
    found = quoted.extract(THREAD.read_text())
    v2 = next(q for q in found if q.version == 2)
    assert v2.quoted_by == "Mel Gorman" and v2.depth == 1 and v2.author == "Rik van Riel"
    assert [f.path for f in v2.files] == V2_FILES
    assert v2.hunks == 17 and not v2.truncated
    for f in v2.files:
        for h in f.hunks:  # every hunk's line counts agree with its header
            assert (len(h.old()), len(h.new())) == (h.old_len, h.new_len), h.header()
    diff = v2.diff()
    # The reviewer's interleaved comments are gone, and so are the quote marks.
    assert "This doesn't build with LOCKDEP" not in diff
    assert "so I changed this and others" not in diff
    assert not any(ln.startswith(">") for ln in diff.splitlines())
    assert "+static inline void anon_vma_lock(struct vm_area_struct *vma, void *nest_lock)" in diff
    # The recovered diff parses again to the same shape.
    again = udiff.parse(diff)
    assert sum(len(f.hunks) for f in again) == 17


def test_andreas_quote_of_the_v1_hunk_is_labelled_cut_short():
    found = quoted.extract(THREAD.read_text())
    v1 = next(q for q in found if q.version == 1)
    assert v1.quoted_by == "Andrea Arcangeli" and v1.hunks == 1
    (f,) = v1.files
    assert f.path is None  # the quote starts at the @@ line
    (h,) = f.hunks
    assert (h.old_start, h.old_len, h.new_start, h.new_len) == (1762, 7, 1760, 8)
    assert h.truncated and "+ spin_lock(&mm->page_table_lock);" in h.lines
    assert "This will cause a lock inversion" not in "\n".join(h.lines)
    # Rik's reply quotes Andrea's quote again (depth 2): it is the same hunk, kept once.
    assert sum(1 for q in found if q.version == 1) == 1


def test_series_labels_quoted_revisions():
    ser = series.load(str(THREAD))
    names = [r.name for r in ser.revisions]
    assert names == ["v1-quoted", "v2-quoted"]
    for r in ser.revisions:
        assert r.quoted and "quoted by" in r.origin and "not the author's mail" in r.description
    assert "Mel Gorman" in ser.revision("v2-quoted").origin


def test_kpv_series_json_lists_the_quoted_v2():
    p = run_kpv("series", str(THREAD), "--json")
    assert p.returncode == 0, p.stderr
    revs = {r["name"]: r for r in json.loads(p.stdout)["revisions"]}
    v2 = revs["v2-quoted"]
    assert v2["quoted"] is True and v2["files"] == V2_FILES and v2["hunks"] == 17
    assert revs["v1-quoted"]["patch_details"][0]["files"][0]["truncated_hunks"] == 1
    text = run_kpv("series", str(THREAD)).stdout
    assert "v2-quoted: 1 patches, 6 files, 17 hunks [QUOTED in a reply" in text


def test_a_thread_without_any_diff_is_a_clear_error(tmp_path):
    t = tmp_path / "talk.txt"
    t.write_text("From: A on\n> hello\nhi\nFrom: B on\n> > hello\n> hi\nbye\n")
    with pytest.raises(UserError, match="but no patches in them") as e:
        series.load(str(t))
    assert str(t) in str(e.value)
