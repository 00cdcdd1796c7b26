"""The mangling test on the real tree: each revision of patches/anon-vma-lock, its whitespace
folded the way the 2010 archive did, applied by kpv to Debian's 6.1 tree, must give the same
tree as the clean patch (`git diff` of the two worktrees is empty)."""

import re
import time
from pathlib import Path

import pytest

from pipeline import series, tree
from tests.conftest import git
from tests.series_util import mangle

ROOT = Path(__file__).resolve().parent.parent
SERIES = ROOT / "patches" / "anon-vma-lock"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not SERIES.is_dir(), reason="patches/anon-vma-lock missing")]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """(base, clean worktree, worktree for the mangled patches), both shared clones."""
    base = tree.find_base("debian:linux-source-6.1")
    d = tmp_path_factory.mktemp("mangled")
    wts = []
    for name in ("clean", "mangled"):
        git(d, "clone", "-q", "--shared", "--no-checkout", str(base.repo), name)
        git(d / name, "checkout", "-q", "--detach", base.commit)
        wts.append(d / name)
    return base, *wts


def _short_index(text: str) -> str:
    """Index lines with 7-digit blob names: git abbreviates them by the size of the
    repository that wrote the patch, so the same blobs may be written 7 or 9 digits long."""
    return re.sub(r"(?m)^index ([0-9a-f]{7})[0-9a-f]*\.\.([0-9a-f]{7})[0-9a-f]*",
                  r"index \1..\2", text)


@pytest.mark.parametrize("rev", ["v1", "v2", "v2-buildfix", "v3"])
def test_mangled_revision_applies_like_the_clean_one(trees, rev, tmp_path):
    base, clean_wt, wt = trees
    clean = list(series.load(str(SERIES)).revision(rev).patches)
    mangled = []
    for p in clean:
        m = tmp_path / p.name
        m.write_text(mangle(p.read_text()))
        assert "\t" not in m.read_text()
        mangled.append(m)

    ok = tree.apply(clean_wt, base, clean)
    assert ok.ok and ok.strategy == tree.GIT_AM, ok.log
    t0 = time.monotonic()
    res = tree.apply(wt, base, mangled, keep=tmp_path / "kept")
    took = time.monotonic() - t0
    assert res.ok, res.log
    for _, strategy in res.strategies:
        assert strategy == f"{tree.WS_APPLY} (whitespace verified against the patch's index blobs)"
    git(wt, "fetch", "-q", str(clean_wt), "HEAD")
    assert git(wt, "diff", "FETCH_HEAD", "HEAD") == ""
    # The kept patches are the author's diffs again, whitespace and all.
    for k, p in zip(res.kept, clean, strict=True):
        diff = k.read_text().split("\ndiff --git", 1)[1].split("\n-- \n")[0]
        assert _short_index(diff) in _short_index(p.read_text())
    print(f"{rev}: mangled apply {took:.1f} s")


def test_an_ambiguous_hunk_is_refused_on_the_real_tree(trees, tmp_path):
    base, _, wt = trees
    # Lines that expand_upwards and expand_downwards share, with a header that names neither
    # function nor either line: kpv must not pick one.
    p = tmp_path / "0001-ambiguous.patch"
    p.write_text(
        "From: a <a@b>\nSubject: [PATCH] ambiguous\n\n---\n"
        "diff --git a/mm/mmap.c b/mm/mmap.c\n--- a/mm/mmap.c\n+++ b/mm/mmap.c\n"
        "@@ -1,4 +1,5 @@\n"
        "/* We must make sure the anon_vma is allocated. */\n"
        "if (unlikely(anon_vma_prepare(vma))) {\n"
        "mas_destroy(&mas);\n"
        "+ /* here? */\n"
        "return -ENOMEM;\n")
    res = tree.apply(wt, base, [p])
    assert not res.ok and res.failed_patch == p.name
    assert "matches 2 places" in res.log and "ambiguous, refusing" in res.log
    assert git(wt, "status", "--porcelain") == ""
