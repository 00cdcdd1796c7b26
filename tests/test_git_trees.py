"""kpv on a tree of the user's own: a git checkout made from Debian's linux-source-6.12
tarball, with series on its branches (`BASE..TIP`, and named `NAME=BASE..TIP` ranges).

Builds: one lockdep kernel of 6.12 with the default job's fragments (4-6 min from cold,
shared through kpv's cache with every other run on that base), then incremental rebuilds
for each revision (a documentation or mm/ change: seconds to a minute). Boots, at 1 vCPU
with short tests: the default job's five tests for baseline and the branch in the first
test, one test for each of four revisions in the second.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import tree

from .conftest import git

ROOT = Path(__file__).resolve().parent.parent
V1_PORT = ROOT / "tests" / "data" / "series" / "6.12-v1-expand-downwards.patch"

pytestmark = pytest.mark.integration


def _commit(repo: Path, path: str, line: str, subject: str) -> None:
    """One commit adding a line to a file: a change of the user's own."""
    with open(repo / path, "a") as f:
        f.write(line + "\n")
    git(repo, "commit", "-q", "-a", "-m", subject, "-m", "Made by kpv's tests.")


@pytest.fixture(scope="module")
def user_tree(tmp_path_factory) -> Path:
    """A clone of the 6.12 tarball's tree: `main` at the base, branches on top of it."""
    base = tree.find_base("debian:linux-source-6.12")
    repo = tmp_path_factory.mktemp("user") / "linux"
    git(repo.parent, "clone", "-q", str(base.repo), repo.name)
    git(repo, "config", "user.name", "A Kernel Developer")
    git(repo, "config", "user.email", "dev@example.org")
    git(repo, "checkout", "-q", "-B", "main", base.commit)
    # topic: a documentation commit, then the 6.12 port of the 2010 RFC's v1.
    git(repo, "checkout", "-q", "-b", "topic")
    _commit(repo, "Documentation/mm/index.rst", "", "Documentation/mm: end with a blank line")
    git(repo, "am", "-q", str(V1_PORT))
    # r1..r3: three revisions of a harmless series, each on its own branch.
    for i, path in enumerate(["Documentation/mm/index.rst", "mm/mmap.c", "mm/rmap.c"], 1):
        git(repo, "checkout", "-q", "-b", f"r{i}", "main")
        _commit(repo, path, "" if path.endswith(".rst") else f"/* r{i} */",
                f"mm: revision {i} of a series that changes nothing")
    git(repo, "checkout", "-q", "main")
    return repo


def _kpv(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_branch_is_a_revision_and_its_report_is_caught(user_tree, tmp_path):
    status = git(user_tree, "status", "--porcelain")
    listed = _kpv("series", "--tree", str(user_tree), "main..topic", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "topic" in listed.stdout and "2 patch" in listed.stdout, listed.stdout
    out = tmp_path / "out"
    # Every test of the default job: on 6.12 each must reach what it is there to reach.
    p = _kpv("run", "--tree", str(user_tree), "--series", "main..topic", "--vcpus", "1",
             "--duration", "5", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr  # the v1 port's report fails the revision
    run = json.loads((out / "results.json").read_text())
    assert run["properties"]["base_commit"] == git(user_tree, "rev-parse", "main").strip()
    suites = {s["name"]: s for s in run["suites"]}
    assert set(suites) == {"kpv.baseline", "kpv.baseline.vcpus_1", "kpv.topic",
                           "kpv.topic.vcpus_1"}
    assert all(c["status"] == "pass" for n in ("kpv.baseline", "kpv.baseline.vcpus_1")
               for c in suites[n]["cases"])
    tests = [c["name"] for c in suites["kpv.baseline.vcpus_1"]["cases"]]
    assert tests == ["boot", "fork", "stack", "mmap", "migrate", "race"], tests
    titles = [r["title"] for c in suites["kpv.topic.vcpus_1"]["cases"] for r in c["reports"]]
    assert any("sleeping function called from invalid context in expand_downwards" in t
               for t in titles), titles
    assert git(user_tree, "status", "--porcelain") == status  # the user's tree: untouched
    assert git(user_tree, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_named_ranges_are_revisions_in_order(user_tree, tmp_path):
    out = tmp_path / "out"
    p = _kpv("run", "--tree", str(user_tree), "--series", "v1=main..r1", "--series",
             "v2=main..r2", "--series", "v3=main..r3", "--vcpus", "1", "--tests", "fork",
             "--duration", "3", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    run = json.loads((out / "results.json").read_text())
    names = [s["name"] for s in run["suites"]]
    assert names == ["kpv.baseline", "kpv.baseline.vcpus_1", "kpv.v1", "kpv.v1.vcpus_1",
                     "kpv.v2", "kpv.v2.vcpus_1", "kpv.v3", "kpv.v3.vcpus_1"]
    for i in (1, 2, 3):  # each revision is its own branch's commit
        suite = next(s for s in run["suites"] if s["name"] == f"kpv.v{i}")
        assert suite["properties"]["patch_1"].startswith(
            f"0001-mm-revision-{i}-of-a-series-that-changes-nothing.patch "), suite
        assert "patch_2" not in suite["properties"]
