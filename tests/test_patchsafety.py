"""Patches are data from strangers: what would write outside the tree is refused."""

import pytest

from pipeline import patchsafety, tree
from pipeline.errors import UserError
from tests.conftest import git
from tests.series_util import format_patch


def _diff(path_a, path_b, header=""):
    return (f"diff --git {path_a} {path_b}\n{header}--- {path_a}\n+++ {path_b}\n"
            "@@ -1 +1 @@\n-hello\n+owned\n")


@pytest.mark.parametrize("text, match", [
    (_diff("a/../outside", "b/../outside"), r"\.\./outside: climbs out of the tree"),
    (_diff("/etc/passwd", "/etc/passwd"), "absolute path"),
    (_diff("a/.git/config", "b/.git/config"), "writes into .git"),
    ("diff --git a/x.bin b/x.bin\nindex 1..2 100644\nGIT binary patch\nliteral 1\nIcmZ\n",
     "binary patch refused"),
    (_diff("a/l", "b/l", "new file mode 120000\n"), "symlink"),
])
def test_unsafe_patches_are_refused(text, match):
    with pytest.raises(UserError, match=match) as e:
        patchsafety.check(text, "0001-evil.patch")
    assert "0001-evil.patch" in str(e.value)


def test_a_path_through_a_symlink_in_the_tree_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="link is a symlink in the tree"):
        patchsafety.check(_diff("a/link/f", "b/link/f"), "p", tmp_path)


def test_tree_apply_refuses_outside_and_writes_nothing(small_repo, tmp_path):
    evil = tmp_path / "0001-evil.patch"
    evil.write_text("From: x <x@y>\nSubject: [PATCH] evil\n\n---\n"
                    "diff --git a/../outside b/../outside\nnew file mode 100644\n"
                    "--- /dev/null\n+++ b/../outside\n@@ -0,0 +1 @@\n+owned\n")
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [evil])
    assert not res.ok and res.failed_patch == evil.name
    assert "refused" in res.message and "../outside" in res.message
    assert not (wt.parent / "outside").exists() and not (tmp_path / "outside").exists()
    assert git(wt, "status", "--porcelain") == ""


def _mode_mail(header: str) -> str:
    return ("From: Eve <eve@example.org>\nSubject: [PATCH] add a link\n\n---\n"
            f"diff --git a/l b/l\n{header}--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n"
            "+/etc/passwd\n\\ No newline at end of file\n")


# Each of these is a symlink (or gitlink) to git: it reads a mode as strtoul(s, 8) does.
@pytest.mark.parametrize("header", [
    "new file mode 0120000\n",
    "new file mode 00120000\n",
    "new file mode  +120000\n",
    "new file mode 1120000\n",  # bits above the file type are dropped
    "new file mode -37777657777\n",  # negated in unsigned arithmetic: 0120001
    "new file mode 100644\nnew mode 0120000\n",
    "new file mode 100644\nold mode 0120000\n",
    "new file mode 100644\nindex 0000000..1111111 0120000\n",
    "new file mode 0160000\n",
    "deleted file mode 0120000\n",
])
def test_symlink_modes_are_refused_however_spelled(small_repo, tmp_path, header):
    evil = tmp_path / "0001-link.patch"
    evil.write_text(_mode_mail(header))
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [evil])
    assert not res.ok and "refused" in res.message and evil.name in res.message
    assert "mode" in res.message and "git am" not in res.log
    assert not (wt / "l").is_symlink() and git(wt, "status", "--porcelain") == ""


@pytest.mark.parametrize("header", ["new file mode 100644\n", "new file mode 0100644\n",
                                    "new file mode 644\n"])
def test_regular_file_modes_still_apply(small_repo, tmp_path, header):
    ok = tmp_path / "0001-file.patch"
    ok.write_text(_mode_mail(header))
    base = tree.find_base(str(small_repo))
    res = tree.apply(tree.worktree(base), base, [ok])
    assert res.ok and res.strategy == tree.GIT_AM, res.log


@pytest.mark.parametrize("prose", ["new mode 120000 is what git gives a symlink.",
                                   "new file mode 120000 makes a link, which kpv refuses."])
def test_a_mode_in_the_commit_message_is_prose(small_repo, tmp_path, prose):
    # git reads modes only from a diff's header: a message line is never one.
    (small_repo / "README").write_text("hello\nworld\n")
    git(small_repo, "commit", "-q", "-am", f"readme: say why\n\nA line may start so:\n{prose}\n")
    (patch,) = format_patch(small_repo, "HEAD~1..HEAD", tmp_path / "p")
    git(small_repo, "reset", "-q", "--hard", "HEAD~1")
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [patch])
    assert res.ok and res.strategy == tree.GIT_AM, res.message
    assert (wt / "README").read_text() == "hello\nworld\n"


def _readme_mail(diff: str) -> str:
    return f"From: Eve <eve@example.org>\nSubject: [PATCH] readme\n\n---\n{diff}-- \n2.39.5\n"


def test_a_hunk_with_more_lines_than_its_counts_is_refused(small_repo, tmp_path):
    short = tmp_path / "0001-short.patch"
    short.write_text(_readme_mail("diff --git a/README b/README\n--- a/README\n+++ b/README\n"
                                  "@@ -1 +1,2 @@\n hello\n+one\n+two\n+three\n+four\n"))
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [short])
    assert not res.ok and "git am" not in res.log
    assert res.message == (f"patch {short.name} refused: {short.name}: README: hunk 1 "
                           "(@@ -1,1 +1,2 @@) is followed by 3 line(s) its counts leave out; "
                           "refused (git would drop them)")
    assert (wt / "README").read_text() == "hello\n"


def test_a_c_quoted_path_that_climbs_out_is_refused(small_repo, tmp_path):
    q = '"b/\\056\\056/outside"'
    evil = tmp_path / "0001-quoted.patch"
    evil.write_text(_readme_mail(f'diff --git "a/\\056\\056/outside" {q}\nnew file mode 100644\n'
                                 f"--- /dev/null\n+++ {q}\n@@ -0,0 +1 @@\n+owned\n"))
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [evil])
    assert not res.ok and "a/../outside: climbs out of the tree" in res.message, res.log
    assert not any(p.name.endswith("outside") for p in wt.parent.rglob("*outside*"))


def test_c_quoted_paths_are_decoded_for_the_fallback_too():
    from pipeline import udiff

    (fp,) = udiff.parse('--- "a/t\\303\\244b\\tx"\n+++ "b/t\\303\\244b\\tx"\n@@ -1 +1 @@\n-a\n+b\n')
    assert fp.new_path == "t\u00e4b\tx" and fp.raw_paths == ("a/t\u00e4b\tx", "b/t\u00e4b\tx")


def test_a_base64_body_is_checked_as_git_am_decodes_it(small_repo, tmp_path):
    """git am decodes a base64 (or quoted-printable) body before it applies the diff: the
    raw mail shows no mode, no path, nothing to refuse."""
    import base64

    body = _mode_mail("new file mode 120000\n").split("\n\n", 1)[1]
    mail = tmp_path / "0001-link.patch"
    mail.write_text("From: Eve <eve@example.org>\nSubject: [PATCH] add a link\n"
                    "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: base64\n\n"
                    + base64.encodebytes(body.encode()).decode())
    patchsafety.check(mail.read_text(), mail.name)  # the raw text passes: nothing visible
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [mail])
    assert not res.ok and "symlink mode" in res.message, res.message
    assert not (wt / "l").is_symlink() and git(wt, "status", "--porcelain") == ""
