"""kpv installed as a user installs it: a wheel built from this checkout, put into a new
virtual environment, run from a folder that is not the checkout.

Integration tier: builds the default job's baseline kernel (Debian's 6.1, the
lockdep fragments), shared through kpv's cache with tests/test_integration.py,
so after that module it is reused, not rebuilt; boots it once at 1 vCPU.
"""

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh virtual environment holding kpv's wheel."""
    d = tmp_path_factory.mktemp("install")
    # From a copy: building writes build/ and *.egg-info beside the sources.
    src = d / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "kpv-out"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(d),
                    str(src)], check=True, cwd=d)
    (wheel,) = d.glob("kpv-*.whl")
    venv.create(d / "venv", with_pip=True)
    bin_dir = d / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "-q", str(wheel)], check=True, cwd=d)
    return bin_dir


def kpv(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "kpv"), *args], cwd=cwd, text=True,
                          capture_output=True, timeout=5400)


def test_version(installed, tmp_path):
    version = json.loads(subprocess.run(
        [str(installed / "python"), "-c",
         "import importlib.metadata, json; print(json.dumps(importlib.metadata.version('kpv')))"],
        capture_output=True, text=True, check=True).stdout)
    p = kpv(installed, tmp_path, "--version")
    assert (p.returncode, p.stdout) == (0, f"kpv {version}\n")


def test_doctor_finds_the_files_in_the_installed_package(installed, tmp_path):
    p = kpv(installed, tmp_path, "doctor")
    (line,) = [ln for ln in p.stdout.splitlines() if "kpv's own files" in ln]
    assert line.split()[0] == "ok", line
    assert Path(line.split(": ", 1)[1]).is_relative_to(installed.parent), line


def test_default_job_runs_from_anywhere(installed, tmp_path):
    out = tmp_path / "out"
    p = kpv(installed, tmp_path, "run", "--revisions", "baseline", "--vcpus", "1",
            "--tests", "fork", "--duration", "3", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["suites"]] == ["kpv.baseline", "kpv.baseline.vcpus_1"]
    fork = results["suites"][1]["cases"][-1]
    assert (fork["name"], fork["status"]) == ("fork", "pass")
