"""kpv's whitespace-tolerant applier on small real git repositories."""

import pytest

from pipeline import wsapply
from tests.conftest import git
from tests.series_util import c_repo, change, format_patch, mangle


@pytest.fixture
def repo(tmp_path):
    return c_repo(tmp_path)


def _patch(repo, tmp_path, old, new, msg="mm: change", last=False):
    if last:  # change the last occurrence
        f = repo / "mm" / "demo.c"
        head, _, tail = f.read_text().rpartition(old)
        f.write_text(head + new + tail)
        git(repo, "commit", "-q", "-a", "-m", msg)
    else:
        change(repo, "mm/demo.c", old, new, msg)
    (p,) = format_patch(repo, "HEAD~1..HEAD", tmp_path / "out")
    clean = (repo / "mm" / "demo.c").read_text()
    git(repo, "reset", "-q", "--hard", "base")
    return p.read_text(), clean


def test_mangled_patch_gives_the_authors_file_byte_for_byte(repo, tmp_path):
    # In second(), whose lines around the change are the same as first()'s.
    text, clean = _patch(
        repo, tmp_path,
        "\t\treturn error;\n\tspin_unlock(&mm->page_table_lock);\n\treturn 0;\n}\n",
        "\t\treturn error;\n\tif (vma) {\n\t\tvma->flags = 0;\t/* reset */\n"
        "\t\t/*\n\t\t * Say why, in a comment.  Two blanks after the stop.\n\t\t */\n"
        "\t\tcall(vma,\n\t\t     error);\n\t}\n"
        "\tspin_unlock(&mm->page_table_lock);\n\treturn 0;\n}\n", last=True)
    mangled = mangle(text)
    assert "\t" not in mangled and "  " not in mangled.split("\n---\n", 1)[1]
    res = wsapply.apply(repo, mangled, "0001.patch")
    assert res.ok, res.message
    assert (repo / "mm" / "demo.c").read_text() == clean
    (f,) = res.files
    assert f.check.startswith("verified: blob"), f.check
    assert res.verified
    # The hunk matched in two look-alike functions; the header's function name chose.
    assert any("matched 2 places" in n for n in f.notes)


def test_without_index_line_the_neighbours_decide(repo, tmp_path):
    text, clean = _patch(repo, tmp_path, "\tint error = 0;\n\n\tspin_lock",
                         "\tint error = 0;\n\tint again = 1;\n\n\tspin_lock")
    # Drop the index line: nothing to verify against, the best guess must do.
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("index ")) + "\n"
    res = wsapply.apply(repo, mangle(text), "p")
    assert res.ok, res.message
    assert (repo / "mm" / "demo.c").read_text() == clean
    assert res.files[0].check.startswith("guessed")
    assert not res.verified


def test_ambiguous_hunk_is_refused(repo):
    # Lines that occur in both functions, with a header naming neither and a line in neither.
    diff = ("--- a/mm/demo.c\n+++ b/mm/demo.c\n@@ -40,3 +40,4 @@\n"
            " if (error)\n return error;\n+ error = 1;\n spin_unlock(&mm->page_table_lock);\n")
    before = (repo / "mm" / "demo.c").read_text()
    res = wsapply.apply(repo, diff, "amb.patch")
    assert not res.ok
    assert "amb.patch: mm/demo.c: hunk 1" in res.message
    assert "matches 2 places (lines 9, 20)" in res.message and "ambiguous, refusing" in res.message
    assert (repo / "mm" / "demo.c").read_text() == before  # nothing written


def test_hunk_that_matches_nowhere_is_refused_and_nothing_is_written(repo):
    diff = ("--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hello\n+bye\n"
            "--- a/mm/demo.c\n+++ b/mm/demo.c\n@@ -1,2 +1,2 @@\n"
            "-/* not this line */\n+/* x */\n #include <linux/mm.h>\n")
    res = wsapply.apply(repo, diff, "bad.patch")
    assert not res.ok and "mm/demo.c: hunk 1" in res.message and "matches nowhere" in res.message
    assert (repo / "README").read_text() == "hello\n"  # all or nothing


def test_whitespace_intact_patch_keeps_its_added_lines(repo):
    # Context lines with spaces where the tree has tabs (a mailer's doing), added lines intact.
    diff = ("--- a/mm/demo.c\n+++ b/mm/demo.c\n"
            "@@ -5,3 +5,4 @@ static int first(struct vm_area_struct *vma)\n"
            "     int error = 0;\n+\tint   spaced;\n \n     spin_lock(&mm->page_table_lock);\n")
    res = wsapply.apply(repo, diff, "p")
    assert res.ok, res.message
    assert "\tint error = 0;\n\tint   spaced;\n\n" in (repo / "mm" / "demo.c").read_text()


def test_new_and_deleted_files(repo):
    diff = ("diff --git a/mm/new.c b/mm/new.c\nnew file mode 100644\n--- /dev/null\n"
            "+++ b/mm/new.c\n@@ -0,0 +1,2 @@\n+int x;\n+int y;\n"
            "diff --git a/README b/README\ndeleted file mode 100644\n--- a/README\n+++ /dev/null\n"
            "@@ -1 +0,0 @@\n-hello\n")
    res = wsapply.apply(repo, diff, "p")
    assert res.ok, res.message
    assert (repo / "mm" / "new.c").read_text() == "int x;\nint y;\n"
    assert not (repo / "README").exists()
    assert [f.action for f in res.files] == ["created", "deleted"]


def test_refuses_to_follow_a_symlink_out(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("hello\n")
    (repo / "link").symlink_to(outside)
    diff = "--- a/link/f\n+++ b/link/f\n@@ -1 +1 @@\n-hello\n+owned\n"
    with pytest.raises(Exception, match="symlink"):
        wsapply.apply(repo, diff, "p")
    assert (outside / "f").read_text() == "hello\n"


def test_choices_come_best_first():
    got = list(wsapply._choices([2, 3]))
    assert got[0] == [0, 0]
    assert sorted(got) == sorted([a, b] for a in range(2) for b in range(3))
    assert [sum(c) for c in got] == sorted(sum(c) for c in got)


def test_a_hunk_quoted_without_its_file_finds_the_one_file(repo):
    git(repo, "tag", "-f", "start")
    (repo / "mm" / "other.c").write_text("int unrelated;\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "other")
    # As a reviewer quotes it: no diff header, whitespace folded.
    hunk = ("@@ -4,3 +4,4 @@ static int first(struct vm_area_struct *vma)\n"
            "{\n int error = 0;\n+ int quoted = 1;\n\n")
    res = wsapply.apply(repo, hunk, "q")
    assert res.ok, res.message
    assert res.files[0].path == "mm/demo.c"
    assert "\tint error = 0;\n\tint quoted = 1;\n" in (repo / "mm" / "demo.c").read_text()
