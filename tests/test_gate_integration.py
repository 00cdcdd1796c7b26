"""What a revision changed, on a base that already has a bug: a git clone of Debian's 6.1
tree whose `main` carries kpv's forkmigration canary (a lock inversion that page migration
reaches), with the default series on top, and a three-patch branch whose second patch is
the v1 port.

Builds, in the worktree and build folder of Debian's 6.1 (the clone has its history,
so nothing starts from scratch) and through kpv's kernel cache: 6.1 + canary (the
canary test of test_stress_integration builds the same sources), the three-patch branch
and its first prefix, v1 (mm/mmap.c and Documentation changes: a minute each), v3 (it
touches mm_types.h: a near-full rebuild, 4-5 min). Boots: the migrate test at 2 vCPUs,
5 s each, with the confirming boots of each new report. Measured: 283 s with kernels
cached, about 10 min cold.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import tree

ROOT = Path(__file__).resolve().parent.parent
CANARY = next((ROOT / "stress" / "canaries" / "forkmigration").glob("*.patch"))
V1 = next((ROOT / "patches" / "anon-vma-lock" / "v1").glob("*.patch"))
CANARY_SIG = "lockdep-circular: &anon_vma->rwsem kpv_canary_forkmigration"
V1_TITLE = "sleeping function called from invalid context in expand_downwards"
COMMON = ("--tests", "migrate", "--vcpus", "2", "--duration", "5")

pytestmark = pytest.mark.integration


def git(repo: Path, *args: str) -> str:
    """git with fixed dates: the same commits in every run, so kpv's worktree and build
    folder for this base (named by its commit) are reused by the next run."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


@pytest.fixture(scope="module")
def buggy_base(tmp_path_factory) -> Path:
    """main: 6.1 plus the canary; three: main plus a doc change, the v1 port, a doc change."""
    base = tree.find_base("debian:linux-source-6.1")
    repo = tmp_path_factory.mktemp("buggy") / "linux"
    git(repo.parent, "clone", "-q", str(base.repo), repo.name)
    git(repo, "checkout", "-q", "-B", "main", base.commit)
    git(repo, "am", "-q", str(CANARY))
    git(repo, "checkout", "-q", "-b", "three")
    for i, patch in enumerate(("", str(V1), ""), 1):
        if patch:
            git(repo, "am", "-q", patch)
            continue
        with open(repo / "Documentation" / "mm" / "index.rst", "a") as f:
            f.write("\n")
        git(repo, "commit", "-q", "-a", "-m", f"Documentation/mm: blank line {i}",
            "-m", "Made by kpv's tests.")
    git(repo, "checkout", "-q", "main")
    return repo


def kpv(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def cases(out: Path) -> dict[tuple[str, str], dict]:
    run = json.loads((out / "results.json").read_text())
    return {(s["name"], c["name"]): c for s in run["suites"] for c in s["cases"]}


def test_the_first_bad_patch_of_three_is_the_second(buggy_base, tmp_path):
    out = tmp_path / "three"
    p = kpv("run", "--tree", str(buggy_base), "--series", "main..three", *COMMON,
            "--out", str(out), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]
    run = json.loads((out / "results.json").read_text())
    found = run["comparison"]["three"]
    assert [s["title"] for s in found["reports"]["new"]][:1] == [V1_TITLE], found
    # v1 switches lockdep off at boot: the canary's test ran unchecked, so neither seen
    # nor called fixed.
    assert found["reports"]["fixed"] == [], found
    bad = found["first_bad_patch"]
    assert (bad["index"], bad["of"]) == (2, 3), bad
    assert bad["subject"] == ("mm: take page_table_lock outside the anon_vma lock in "
                              "expand_downwards"), bad
    suite = next(s for s in run["suites"] if s["name"] == "kpv.three")
    assert suite["properties"]["first_bad_patch"].startswith("2/3 mm: take page_table_lock")


@pytest.fixture(scope="module")
def gated(buggy_base, tmp_path_factory) -> Path:
    """The default series' baseline, v1 and v3 on the buggy base, gate "new" (the default)."""
    out = tmp_path_factory.mktemp("gated") / "out"
    p = kpv("run", "--tree", str(buggy_base), "--revisions", "baseline,v1,v3", *COMMON,
            "--out", str(out), cwd=out.parent)
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]  # v1's report is new
    return out


def test_preexisting_passes_v3_new_fails_v1_baseline_keeps_its_failure(gated):
    c = cases(gated)
    base = c[("kpv.baseline.vcpus_2", "migrate")]
    assert (base["status"], base["kind"]) == ("fail", "lockdep-circular"), base["message"]
    v3 = c[("kpv.v3.vcpus_2", "migrate")]
    assert v3["status"] == "pass", v3["message"]
    assert v3["properties"]["preexisting_reports"] == CANARY_SIG
    assert [r["signature"] for r in v3["reports"]] == [CANARY_SIG]
    v1 = c[("kpv.v1.vcpus_2", "boot")]
    assert v1["status"] == "fail" and v1["message"].startswith(V1_TITLE), v1["message"]
    assert v1["boots_run"] == 3  # the report's boot and two confirming ones
    run = json.loads((gated / "results.json").read_text())
    new = run["comparison"]["v1"]["reports"]["new"]
    assert (new[0]["boots_seen"], new[0]["boots_run"]) == (3, 3), new
    assert run["comparison"]["v3"]["reports"]["new"] == []
    assert run["comparison"]["v1"]["first_bad_patch"] is None  # one patch: nothing to bisect
    xml = (gated / "junit.xml").read_text()
    assert "PREEXISTING (the baseline shows it too" in xml


def test_gate_any_fails_v3_against_the_same_baseline_taken_from_the_earlier_run(
        buggy_base, gated, tmp_path):
    out = tmp_path / "any"
    p = kpv("run", "--tree", str(buggy_base), "--revisions", "v3", *COMMON, "--gate", "any",
            "--baseline-results", str(gated), "--out", str(out), cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]
    c = cases(out)
    assert ("kpv.baseline.vcpus_2", "migrate") not in c  # taken from the earlier run
    v3 = c[("kpv.v3.vcpus_2", "migrate")]
    assert (v3["status"], v3["kind"]) == ("fail", "lockdep-circular"), v3["message"]
    found = json.loads((out / "results.json").read_text())["comparison"]["v3"]
    assert found["baseline"] == str(gated)
    assert [s["signature"] for s in found["reports"]["preexisting"]] == [CANARY_SIG]
    compared = kpv("compare", str(gated), str(out), "--json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    shown = json.loads(compared.stdout)["v3"]["reports"]["preexisting"]
    assert [s["signature"] for s in shown] == [CANARY_SIG]
