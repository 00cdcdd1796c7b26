"""Patches are data from strangers: what would write outside the tree is refused."""

import pytest

from pipeline import patchsafety, tree
from pipeline.errors import UserError
from tests.conftest import git


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
