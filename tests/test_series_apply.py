"""Applying in strategies: `git am -3` first, kpv's whitespace-tolerant applier only when
that fails; per-patch strategy recorded; the patch as applied kept; `kpv apply`."""

from pipeline import cli, tree
from tests.conftest import git
from tests.series_util import c_repo, change, format_patch, mangle, run_kpv


def _two_patches(tmp_path):
    repo = c_repo(tmp_path)
    change(repo, "README", "hello\n", "hello\nworld\n", "readme: add world")
    change(repo, "mm/demo.c", "\tint error = 0;\n\n\tspin_lock",
           "\tint error = 0;\n\tint again = 1;\n\n\tspin_lock", "mm: add again")
    pats = format_patch(repo, "base..HEAD", tmp_path / "p")
    clean = (repo / "mm" / "demo.c").read_text()
    git(repo, "reset", "-q", "--hard", "base")
    return repo, pats, clean


def test_git_am_first_then_the_fallback_only_for_the_mangled_patch(tmp_path):
    repo, pats, clean = _two_patches(tmp_path)
    pats[1].write_text(mangle(pats[1].read_text()))
    base = tree.find_base(str(repo))
    wt = tree.worktree(base)
    res = tree.apply(wt, base, pats, keep=tmp_path / "kept")
    assert res.ok, res.log
    (_, s1), (n2, s2) = res.strategies
    assert s1 == tree.GIT_AM
    assert s2.startswith(tree.WS_APPLY) and "verified" in s2
    assert res.strategy == f"{tree.WS_APPLY} for 1 of 2 patch(es): {n2}"
    assert (wt / "mm" / "demo.c").read_text() == clean
    # One commit per patch, with the mail's subject and author.
    assert git(wt, "log", "--format=%s|%an", "-2").split("\n")[:2] == [
        "mm: add again|t", "readme: add world|t"]
    # The patch as applied is a proper diff with the tree's whitespace.
    kept = [p.name for p in res.kept]
    assert kept == [pats[0].name, pats[1].name]
    assert "+\tint again = 1;\n" in res.kept[1].read_text()
    assert "git am -3" in res.log and "whitespace-tolerant" in res.log


def test_a_clean_series_never_reaches_the_fallback(tmp_path):
    repo, pats, _ = _two_patches(tmp_path)
    base = tree.find_base(str(repo))
    res = tree.apply(tree.worktree(base), base, pats)
    assert res.ok and res.strategy == tree.GIT_AM
    assert "whitespace-tolerant" not in res.log


def test_kpv_apply_prints_strategies_and_exit_codes(tmp_path):
    repo, pats, clean = _two_patches(tmp_path)
    mb = tmp_path / "mangled.mbox"
    mb.write_text("".join(mangle(p.read_text()) for p in pats))
    p = run_kpv("apply", str(mb), "--tree", str(repo), "--worktree", str(tmp_path / "wt"),
                env={"KPV_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr
    assert "base check: 2 file(s) match the base" in p.stdout
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("000")]
    assert len(lines) == 2 and all("whitespace-tolerant (whitespace verified" in ln
                                   for ln in lines)
    assert (tmp_path / "wt" / "mm" / "demo.c").read_text() == clean
    assert git(repo, "status", "--porcelain") == ""  # the user's tree is untouched

    # Not a new folder.
    p = run_kpv("apply", str(mb), "--tree", str(repo), "--worktree", str(tmp_path / "wt"))
    assert p.returncode == 2 and "not empty" in p.stderr

    # A patch that applies nowhere: exit 1, naming it.
    bad = tmp_path / "bad.patch"
    bad.write_text(pats[1].read_text().replace("int error = 0;", "int nothing = 0;")
                   .replace("[PATCH 2/2]", "[PATCH]"))
    p = run_kpv("apply", str(bad), "--tree", str(repo), "--worktree", str(tmp_path / "wt2"),
                env={"KPV_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 1, p.stderr
    assert "bad.patch: FAILED: patch bad.patch does not apply" in p.stdout
    assert "matches nowhere" in p.stderr


def test_base_commit_in_the_series_is_used(tmp_path):
    repo, pats, _ = _two_patches(tmp_path)
    change(repo, "README", "hello\n", "hello again\n", "readme: later change")
    mb = tmp_path / "s.mbox"
    base = git(repo, "rev-parse", "base").strip()
    mb.write_text("".join(p.read_text() for p in pats).replace(
        "\n-- \n", f"\nbase-commit: {base}\n-- \n", 1))
    p = run_kpv("apply", str(mb), "--tree", str(repo), "--worktree", str(tmp_path / "wt"),
                env={"KPV_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"base-commit {base}: found in the tree" in p.stdout
    assert "git am -3" in p.stdout


def test_kpv_apply_of_a_relative_patch_path_uses_git_am(tmp_path, monkeypatch, capsys):
    repo, pats, _ = _two_patches(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["apply", pats[0].parent.name, "--tree", str(repo),
                     "--worktree", "wt"]) == 0
    out = capsys.readouterr().out
    assert all(f"{p.name}: {tree.GIT_AM}\n" in out for p in pats), out
    assert git(tmp_path / "wt", "log", "-1", "--format=%s|%an") == "mm: add again|t\n"
