"""The stress suite on real kernels, through `kpv run`: reach and detection.

Slow tier (builds kernels, boots them under TCG):
- on the baseline kernel, every stress test passes at 1 and 2 vCPUs with its
  proof of reach (pipeline.reach: a path that did not run is an error);
- each canary of stress/canaries (a lock inversion on one path) is caught by
  its stress test, and a plain boot (the `idle` test) of the same kernel is
  clean.
"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline import reach

ROOT = Path(__file__).resolve().parent.parent
CANARIES = ROOT / "stress" / "canaries"
STRESS = ("fork", "stack", "mmap", "migrate", "race")

pytestmark = pytest.mark.integration


def kpv(*args: str, timeout: float = 5400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def cases(out: Path) -> dict[tuple[str, int | None, str], dict]:
    run = json.loads((out / "results.json").read_text())
    return {(s["revision"], s["vcpus"], c["name"]): c for s in run["suites"] for c in s["cases"]}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stress-baseline")
    p = kpv("run", "--revisions", "baseline", "--vcpus", "1,2", "--tests", ",".join(STRESS),
            "--duration", "10", "--out", str(out))
    (out / "kpv.stderr").write_text(p.stderr)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


@pytest.mark.parametrize("vcpus", [1, 2])
@pytest.mark.parametrize("test", STRESS)
def test_baseline_passes_with_proof_of_reach(baseline, test, vcpus):
    c = cases(baseline)[("baseline", vcpus, test)]
    assert c["status"] == "pass", c["message"]
    p = c["properties"]
    assert p["check_failures"] == "0" and p["debug_locks_end"] == "1"
    assert reach.check(test, [p]) == ""
    assert float(p["ops_per_s"]) > 0


def test_baseline_migration_really_moved_pages(baseline):
    p = cases(baseline)[("baseline", 2, "migrate")]["properties"]
    assert int(p["vm_pgmigrate_success"]) > 0 and int(p["mp_confirmed"]) > 0
    assert int(p["vm_thp_collapse_alloc"]) > 0 and int(p["vm_thp_split_page"]) > 0
    assert int(p["ksm_full_scans"]) > 0


def canary_meta() -> dict[str, str]:
    data = tomllib.loads((CANARIES / "series.toml").read_text())
    return {r["name"]: r["caught_by"] for r in data["revision"]}


# Every canary: each is one incremental build and a few boots (~8 min for all six).
SHOWN = tuple(canary_meta())


@pytest.fixture(scope="module")
def canaries(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("canaries")
    tests = sorted({"idle", *(canary_meta()[n] for n in SHOWN)})
    # --confirm 0: each canary's report is new by design; its confirming boots (tested in
    # test_gate_integration) would add half a minute per canary.
    p = kpv("run", "--series", str(CANARIES), "--revisions", ",".join(SHOWN),
            "--tests", ",".join(tests), "--vcpus", "2", "--duration", "10", "--confirm", "0",
            "--out", str(out))
    (out / "kpv.stderr").write_text(p.stderr)
    assert p.returncode == 1, p.stderr[-3000:]  # the canaries must fail the run
    return out


@pytest.mark.parametrize("canary", SHOWN)
def test_canary_is_caught_by_its_stress_test_and_not_by_a_plain_boot(canaries, canary):
    c = cases(canaries)
    build = c[(canary, None, "build")]
    assert build["status"] == "pass", build["message"]
    idle = c[(canary, 2, "idle")]
    assert idle["status"] == "pass", idle["message"]
    assert c[(canary, 2, "boot")]["status"] == "pass"
    caught = c[(canary, 2, canary_meta()[canary])]
    assert caught["status"] == "fail"
    assert caught["kind"] == "lockdep-circular"
    text = " ".join(r["text"] for r in caught["reports"])
    assert f"kpv_canary_{canary}" in text
