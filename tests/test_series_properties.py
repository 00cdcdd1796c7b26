"""Series sources and patches that kpv did not write: generated folders, mails and diffs,
and the project's own patches cut, mutated and spliced, go to the series loader and the
applier. Either a series comes out (and applies or is refused, naming the patch), or the
input is refused in one line: never a traceback, never a file written outside the
worktree or kpv's cache."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import series, tree
from pipeline.errors import KpvError, UserError
from tests.conftest import git

ROOT = Path(__file__).resolve().parent.parent
REAL = sorted((ROOT / "patches").rglob("*.patch"))
pytestmark = pytest.mark.skipif(not REAL, reason="patches/ missing")


@st.composite
def patch_bytes(draw) -> bytes:
    """A real patch of the project's, mutated: cut, bytes flipped, lines dropped or doubled,
    or random bytes outright."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2000))
    data = draw(st.sampled_from(REAL)).read_bytes()
    lines = data.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "double", "flip", "cut", "junk"]))
        if op == "drop":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "flip" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + bytes([draw(st.integers(0, 255))]) + lines[i][j + 1:]
        elif op == "cut":
            lines = lines[:i]
        else:
            lines.insert(i, draw(st.binary(max_size=80)) + b"\n")
    return b"".join(lines)


def _files_below(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")} if folder.exists() else set()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(patches=st.lists(patch_bytes(), min_size=1, max_size=3),
       layout=st.sampled_from(["folder", "file", "mbox"]))
def test_generated_series_load_or_are_refused_in_one_line(tmp_path_factory, patches, layout):
    d = tmp_path_factory.mktemp("src")
    if layout == "folder":
        for i, data in enumerate(patches, 1):
            (d / f"{i:04d}-p.patch").write_bytes(data)
        source = d
    elif layout == "file":
        source = d / "one.patch"
        source.write_bytes(patches[0])
    else:
        source = d / "all.mbox"
        source.write_bytes(b"".join(b"From kpv Mon Sep 17 00:00:00 2001\n" + p + b"\n"
                                    for p in patches))
    before = _files_below(d)
    try:
        ser = series.load(str(source))
    except UserError as e:
        assert "\n" not in str(e) and str(e), repr(e)
    else:
        # A revision kpv cannot apply (a cover letter and no patch) says why; running
        # it is refused then (Series.revision checks).
        assert ser.revisions and all(r.patches or r.problems for r in ser.revisions)
        for r in ser.revisions:
            assert all(p.is_file() for p in r.patches)
    assert _files_below(d) == before  # the user's folder: read, never written


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A small git tree holding the files the project's patches touch, at their base text
    where it is known (the patches' own context lines are not needed: refusals and
    failures to apply are both fine outcomes here)."""
    r = tmp_path_factory.mktemp("tree") / "linux"
    r.mkdir()
    git(r, "init", "-q")
    for sub in ("mm", "include/linux", "kernel", "lib"):
        (r / sub).mkdir(parents=True, exist_ok=True)
    (r / "mm" / "mmap.c").write_text("int x;\n" * 50)
    (r / "README").write_text("hello\n")
    git(r, "add", "-A")
    git(r, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base")
    return r


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=patch_bytes())
def test_generated_patches_apply_or_are_refused_and_write_only_the_worktree(
        repo, tmp_path_factory, data):
    d = tmp_path_factory.mktemp("p")
    patch = d / "0001-p.patch"
    patch.write_bytes(data)
    base = tree.find_base(str(repo))
    wt = tree.worktree(base)
    outside = {p: p.stat().st_mtime_ns for p in _files_below(wt.parent) if wt not in p.parents
               and p != wt}
    try:
        res = tree.apply(wt, base, [patch])
    except KpvError as e:
        pytest.fail(f"apply raised {e!r}")
    assert res.ok or (res.failed_patch == patch.name and "\n" not in res.message)
    after = {p: p.stat().st_mtime_ns for p in _files_below(wt.parent) if wt not in p.parents
             and p != wt}
    assert after == outside
    assert not any(os.path.islink(p) for p in _files_below(wt) if ".git" not in p.parts)
