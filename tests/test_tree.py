"""The tree stage against real git: apply, reset, refuse, never touch the user's repo."""

from pathlib import Path

import pytest

from pipeline import tree, treesource
from pipeline.errors import UserError

from .conftest import git


def make_patch(repo: Path, out: Path, path: str, old: str, new: str, subject: str) -> Path:
    """A real `git format-patch` of one change, made on a throwaway branch."""
    git(repo, "checkout", "-q", "-b", "tmp")
    f = repo / path
    f.write_text(f.read_text().replace(old, new))
    git(repo, "commit", "-q", "-am", subject)
    out.mkdir(parents=True, exist_ok=True)
    name = git(repo, "format-patch", "-1", "-o", str(out)).strip()
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "tmp")
    return Path(name)


def snapshot(repo: Path) -> tuple[str, str, str, int]:
    objects = sum(1 for _ in (repo / ".git" / "objects").rglob("*") if _.is_file())
    return (git(repo, "status", "--porcelain", "--ignored"), git(repo, "show-ref"),
            git(repo, "rev-parse", "HEAD"), objects)


def test_apply_reset_and_user_repo_untouched(small_repo, tmp_path):
    good = make_patch(small_repo, tmp_path / "p", "mm/mmap.c", "line 7\n", "line 7 changed\n",
                      "mm: change line 7")
    before = snapshot(small_repo)
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    assert wt != small_repo and not wt.is_relative_to(small_repo)

    res = tree.apply(wt, base, [good])
    assert res.ok and res.applied == (good.name,)
    assert "line 7 changed" in (wt / "mm/mmap.c").read_text()

    # The next revision starts from the base again, in the same worktree.
    res = tree.apply(wt, base, [])
    assert res.ok and "line 7 changed" not in (wt / "mm/mmap.c").read_text()
    assert tree.worktree(base) == wt
    assert snapshot(small_repo) == before


def test_patch_that_does_not_apply_names_patch_and_file(small_repo, tmp_path):
    good = make_patch(small_repo, tmp_path / "p", "mm/mmap.c", "line 7\n", "line 7 changed\n",
                      "mm: change line 7")
    bad = tmp_path / "p" / "0002-bad.patch"
    bad.write_text(good.read_text().replace("-line 7\n", "-line 7 is not there\n"))
    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, [good, bad])
    assert not res.ok
    assert res.applied == (good.name,)
    assert res.failed_patch == "0002-bad.patch"
    assert res.message == "patch 0002-bad.patch does not apply at mm/mmap.c:5"
    # Left clean at the base: the failed am is aborted.
    assert "line 7 changed" not in (wt / "mm/mmap.c").read_text()
    assert not (wt / ".git" / "rebase-apply").exists()


def test_bad_tree_sources(tmp_path, small_repo, monkeypatch):
    with pytest.raises(UserError, match=r"not a git checkout"):
        tree.find_base(str(tmp_path))
    with pytest.raises(UserError, match=r"no commit 'v9\.9'"):
        tree.find_base(str(small_repo), "v9.9")
    monkeypatch.setattr(treesource, "SRC", tmp_path)
    with pytest.raises(UserError, match=r"install Debian's linux-source-6\.1 package"):
        tree.find_base("debian:linux-source-6.1")
    with pytest.raises(UserError, match=r"linux-source-6\.12\.tar\.xz not found: install "
                       r"Debian's linux-source-6\.12 package"):
        tree.find_base("debian:linux-source-6.12")
    with pytest.raises(UserError, match=r"^--tree 'debian:linux-6\.1': expected "
                       r"debian:linux-source-X\.Y"):
        tree.find_base("debian:linux-6.1")


def test_worktree_lock_serialises_runs(small_repo):
    import threading

    base = tree.find_base(str(small_repo))
    wt = tree.worktree(base)
    waits: list[str] = []
    order: list[str] = []
    with tree.locked(wt, waits.append):
        t = threading.Thread(target=lambda: _take(wt, waits, order))
        t.start()
        t.join(0.5)
        assert t.is_alive()  # the second holder waits for the first
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]
    assert waits and "waiting for another kpv run" in waits[0]


def _take(wt, waits, order):
    with tree.locked(wt, waits.append):
        order.append("second")
