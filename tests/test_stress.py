"""The stress programs mmap, migrate and race, run for real on the host.

The host has one NUMA node, so nothing migrates here: these tests check the
programs' own logic (operations, data checks, result lines); the guest runs
in tests/test_stress_integration.py show the kernel paths reached.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import guest, markers, reach

STRESS_SRC = Path(__file__).resolve().parent.parent / "stress"
# On the host: never compact the host's memory.
HOST_ARGS = {"migrate": ["--compact-ms", "0"], "race": ["--compact-ms", "0"], "mmap": []}


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return guest.build_stress(STRESS_SRC, tmp_path_factory.mktemp("stress"))


def run(binary: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, env=env)


def result(done: subprocess.CompletedProcess) -> dict[str, str]:
    found = markers.parse(done.stdout)
    assert [m.kind for m in found] == ["result"], done.stdout + done.stderr
    return found[0].fields


KINDS = {
    "mmap": ["mprotect", "mremap", "remap", "dontneed"],
    "migrate": ["move_pages", "migrate_pages", "mbind", "collapse", "compact", "cow"],
    "race": ["move_pages", "migrate_pages", "compact", "mprotect", "mremap", "remap", "cow",
             "growsdown", "fork"],
}


@pytest.mark.parametrize("name", ["mmap", "migrate", "race"])
def test_program_runs_clean_and_reports_every_kind(bins, name):
    done = run(bins[name], "--duration", "1", *HOST_ARGS[name])
    assert done.returncode == 0, done.stderr
    f = result(done)
    assert f["check_failures"] == "0" and f["repeat"] == "1"
    kinds = [k for k in f if k.endswith("_ops")]
    assert kinds == [f"{k}_ops" for k in KINDS[name]]
    assert int(f["ops"]) == sum(int(f[k]) for k in kinds)
    # Every option is echoed, so reach checks can follow it.
    assert any(k.startswith("opt_") for k in f)


def test_mmap_reaches_its_path_even_on_the_host(bins):
    f = result(run(bins["mmap"], "--duration", "1"))
    assert reach.check("mmap", [f]) == ""
    assert int(f["vmas_start"]) >= 2 * 8 * 256 // 8  # two VMAs per cell


def test_migrate_says_what_one_node_cannot_reach(bins):
    f = result(run(bins["migrate"], "--duration", "1", "--compact-ms", "0", "--ksm", "0"))
    assert f["nodes"] == "1"
    assert "nodes=1, need >= 2" in reach.check("migrate", [f])
    # Every page asked for got a status: moved (to node 0) or an errno tally.
    tallied = sum(int(v) for k, v in f.items()
                  if k.startswith("mp_") and k not in ("mp_requested", "mp_confirmed",
                                                       "mp_partial"))
    assert tallied == int(f["mp_requested"])


def test_race_sides_overlap(bins):
    f = result(run(bins["race"], "--duration", "1", "--compact-ms", "0", "--burst-ms", "100"))
    assert int(f["overlap_rounds"]) >= 1
    assert int(f["max_procs"]) == 5
    assert int(f["stack_expansions"]) >= 32


@pytest.mark.parametrize("name", ["mmap", "migrate", "race"])
def test_a_damaged_page_fails_with_its_address(bins, name):
    done = run(bins[name], "--duration", "1", "--corrupt", "1", *HOST_ARGS[name])
    assert done.returncode == 1
    assert int(result(done)["check_failures"]) >= 1
    assert "check failed at 0x" in done.stderr and "expected 0x" in done.stderr


@pytest.mark.parametrize("args", [["--duration", "0"], ["--repeat", "0"], ["--procs", "0"],
                                  ["--bogus", "1"]])
def test_bad_arguments_are_usage_errors(bins, args):
    done = run(bins["mmap"], *args)
    assert done.returncode == 2 and done.stdout == ""


def test_repeat_comes_from_the_environment(bins):
    done = run(bins["mmap"], "--duration", "1", env={"KPV_REPEAT": "3"})
    assert result(done)["repeat"] == "3"


def test_fork_and_stack_reach_their_paths_on_the_host(bins):
    fork = result(run(bins["fork"], "--duration", "1"))
    assert reach.check("fork", [fork]) == ""
    assert int(fork["max_procs"]) >= 33 and int(fork["relay_generations"]) >= 1
    stack = result(run(bins["stack"], "--duration", "1"))
    assert reach.check("stack", [stack]) == ""
    assert int(stack["max_threads"]) >= 2 and int(stack["growsdown_pages"]) >= 64


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed")
def test_every_listed_stress_ng_stressor_exists():
    listed = subprocess.run(["stress-ng", "--stressors"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(guest.STRESS_NG_STRESSORS) <= set(listed)
