"""Series kept as commits: ranges and b4 branches of a real git repository."""

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline import series, tree
from pipeline.cli import main
from pipeline.errors import UserError
from tests.conftest import git


def commit(repo: Path, line: int, text: str, subject: str) -> str:
    path = repo / "mm" / "mmap.c"
    lines = path.read_text().splitlines(keepends=True)
    lines[line] = text + "\n"
    path.write_text("".join(lines))
    git(repo, "commit", "-q", "-am", subject)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def topic(small_repo, monkeypatch, tmp_path):
    """small_repo with a two-commit branch `topic` off main; kpv's cache in tmp_path."""
    monkeypatch.setenv("KPV_CACHE", str(tmp_path / "cache"))
    git(small_repo, "checkout", "-q", "-b", "topic")
    commit(small_repo, 3, "line 3 changed", "mm: change line 3")
    commit(small_repo, 9, "line 9 changed", "mm: change line 9")
    git(small_repo, "checkout", "-q", "main")
    return small_repo


def test_a_range_is_one_revision_on_its_base(topic):
    ser = series.load("main..topic", tree=topic)
    (rev,) = ser.revisions
    assert rev.name == "topic"
    assert rev.base_commit == git(topic, "rev-parse", "main").strip()
    assert [i.subject for i in rev.info] == ["mm: change line 3", "mm: change line 9"]
    assert ser.record["base_commit"] == rev.base_commit
    # The patches are git's own: git am takes them onto the base.
    base = tree.find_base(str(topic), rev.base_commit)
    res = tree.apply(tree.worktree(base), base, list(rev.patches))
    assert res.ok and res.strategy == tree.GIT_AM, res.log


def test_named_ranges_give_named_revisions(topic):
    git(topic, "branch", "topic-v1", "topic~1")
    ser = series.load("v1=main..topic-v1 v2=main..topic", tree=topic)
    assert [(r.name, len(r.patches)) for r in ser.revisions] == [("v1", 1), ("v2", 2)]


def test_kpv_series_shows_a_range_like_any_source(topic, capsys):
    assert main(["series", "main..topic", "--tree", str(topic), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rev,) = out["revisions"]
    assert rev["name"] == "topic" and rev["files"] == ["mm/mmap.c"] and rev["hunks"] == 2
    assert rev["origin"] == f"{topic}:main..topic"


def test_a_merge_in_the_range_is_refused(topic):
    git(topic, "checkout", "-q", "-b", "side", "main")
    commit(topic, 20, "line 20 changed", "mm: change line 20")
    git(topic, "checkout", "-q", "topic")
    git(topic, "merge", "-q", "--no-edit", "side")
    with pytest.raises(UserError, match=r"main\.\.topic: [0-9a-f]{12} \(Merge branch 'side' "
                                         r"into topic\) is a merge; kpv applies a linear"):
        series.load("main..topic", tree=topic)


@pytest.mark.parametrize("source, why", [
    ("main..nosuch", "main..nosuch: 'nosuch' is not a commit in"),
    ("main..main", "main..main: no commits in the range"),
    ("topic..main", "is not an ancestor of"),
    ("main...topic", "a symmetric range (...) is not a series"),
    ("v1=main..topic v1=main..topic~1", "two ranges give the same revision name"),
])
def test_bad_ranges_are_named(topic, source, why):
    with pytest.raises(UserError, match=re.escape(why)):
        series.load(source, tree=topic)


def test_revisions_on_different_bases_are_refused(topic):
    git(topic, "checkout", "-q", "-b", "later", "main")
    commit(topic, 30, "line 30 changed", "mm: change line 30")
    git(topic, "checkout", "-q", "-b", "other")
    commit(topic, 31, "line 31 changed", "mm: change line 31")
    with pytest.raises(UserError, match="the revisions have different bases"):
        series.load("v1=main..topic v2=later..other", tree=topic)


def test_a_range_outside_a_git_checkout_is_refused(tmp_path):
    with pytest.raises(UserError, match="needs --tree to be a git checkout"):
        series.load("main..topic", tree=tmp_path)


def test_b4_sent_tags_are_its_revisions(topic):
    """The layout b4 prep and b4 send leave: a b4/CHANGE branch starting with an empty
    cover-letter commit, and an annotated sent/CHANGE-vN tag per revision sent, whose
    message is the cover letter with its base-commit: line."""
    base = git(topic, "rev-parse", "main").strip()
    git(topic, "checkout", "-q", "-b", "b4/lines", "main")
    git(topic, "commit", "-q", "--allow-empty", "-m", "mm: change some lines\n\nThe cover.")
    commit(topic, 3, "line 3 changed", "mm: change line 3")
    git(topic, "tag", "-a", "sent/lines-v1", "-m",
        f"[PATCH] mm: change some lines\n\nThe cover.\n\n---\nbase-commit: {base}\n"
        "change-id: 20261203-lines-0123456789ab\n")
    commit(topic, 9, "line 9 changed", "mm: change line 9")
    git(topic, "tag", "-a", "sent/lines-v2", "-m",
        f"[PATCH v2] mm: change some lines\n\n---\nbase-commit: {base}\n")
    git(topic, "checkout", "-q", "main")
    ser = series.load("b4/lines", tree=topic)
    assert [(r.name, [i.subject for i in r.info]) for r in ser.revisions] == [
        ("v1", ["mm: change line 3"]),
        ("v2", ["mm: change line 3", "mm: change line 9"]),
    ]
    assert ser.revisions[1].description == "[PATCH v2] mm: change some lines"
    assert {r.base_commit for r in ser.revisions} == {base}


def test_b4_branch_without_sent_tags(topic):
    git(topic, "branch", "b4/unsent", "topic")
    with pytest.raises(UserError, match=r"b4/unsent: no sent revisions \(tags sent/unsent-vN\)"):
        series.load("b4/unsent", tree=topic)


def test_run_refuses_commits_without_a_git_tree(capsys):
    assert main(["run", "--series", "main..topic", "--revisions", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "series.source: main..topic: commits need --tree, a git checkout holding them" in err


def test_run_refuses_a_repeated_series_that_is_not_named_ranges(capsys):
    assert main(["run", "--series", "a.patch", "--series", "b.patch"]) == 2
    assert capsys.readouterr().err.strip() == (
        "kpv: error: --series: given more than once, each must be NAME=BASE..TIP "
        "(got a.patch, b.patch)")


def test_run_takes_named_ranges_as_its_revisions(topic, tmp_path, monkeypatch, capsys):
    """Without --revisions, a run of named ranges runs baseline and each, on their base;
    here it stops once they are known (a PATH with git but no QEMU)."""
    git(topic, "branch", "topic-v1", "topic~1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "out"
    assert main(["run", "--tree", str(topic), "--series", "v1=main..topic-v1",
                 "--series", "v2=main..topic", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "kpv: error: qemu-system-x86_64 not found: install the qemu-system-x86 package")
    props = json.loads((out / "results.json").read_text())["properties"]
    assert props["series"] == "v1=main..topic-v1 v2=main..topic"
