"""What kpv promises on bad input and a bad machine, without a kernel: exit 2 with
one line, exit 3 for its own bugs, and results that stay valid.

The folders are real tmpfs mounts (full, read-only); the tree is a real git
repository; nothing is mocked but the one bug planted to see exit 3.
"""

from pathlib import Path

import pytest

from pipeline import cli
from pipeline.cli import main
from pipeline.results import Run


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_out_that_is_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("mine\n")
    assert main(["run", "--revisions", "baseline", "--out", str(out)]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"kpv: error: --out {out}: exists and is not a folder")
    assert out.read_text() == "mine\n"


def test_read_only_out_is_one_line_naming_it(tmpfs, capsys):
    out = tmpfs(64, read_only=True)
    assert main(["run", "--revisions", "baseline", "--out", str(out)]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"kpv: error: {out}: cannot write results.json: Read-only file system")


def test_out_that_fills_mid_run_keeps_valid_results_and_no_partial_file(
        tmpfs, small_repo, capsys):
    """The guest image (busybox alone is 2 MiB) does not fit; results.json and
    junit.xml, written at the start, stay whole."""
    out = tmpfs(512)
    code = main(["run", "--tree", str(small_repo), "--revisions", "baseline",
                 "--vcpus", "1", "--tests", "fork", "--accel", "tcg", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines()[-1] == (
        f"kpv: error: {out}: cannot write initramfs.cpio: No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "results.json"]
    assert Run.load(out / "results.json").suites == []
    assert (out / "junit.xml").read_text().startswith("<?xml")


@pytest.mark.parametrize("cell, why", [
    ("baseline:0", "guest.vcpus: expected counts of 1 to 64"),
    ("baseline:x", "expected REV:VCPUS, e.g. v1:2"),
    (":2", "expected REV:VCPUS, e.g. v1:2"),
    ("v9:2", "no revision 'v9' in this job"),
])
def test_bad_cell_is_refused(cell, why, tmp_path, capsys):
    assert main(["run", "--cell", cell, "--out", str(tmp_path / "out")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"kpv: error: --cell {cell}: {why}"), line
    assert not (tmp_path / "out").exists()


def test_a_bug_in_kpv_is_exit_3_with_the_traceback_in_the_output_folder(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    Run("job", "2026-01-01T00:00:00").save(out / "results.json")

    def planted(run, where):  # a bug as kpv could have one: an exception nobody expects
        return {}["no such key"]

    monkeypatch.setattr("pipeline.report.junit.write", planted)
    assert main(["report", str(out)]) == 3
    line = _one_line(capsys.readouterr().err)
    assert line == ("kpv: internal error (a bug in kpv): KeyError: 'no such key'; "
                    f"traceback in {out / cli.CRASH_FILE}")
    saved = (out / cli.CRASH_FILE).read_text()
    assert saved.startswith("Traceback (most recent call last):")
    assert "in planted" in saved and saved.rstrip().endswith("KeyError: 'no such key'")


def test_a_bug_without_an_output_folder_prints_its_traceback(tmp_path, monkeypatch, capsys):
    log = tmp_path / "console.log"
    log.write_text("[    0.000000] Linux version 6.1.0\n")
    monkeypatch.setattr("pipeline.analysis.analyse", lambda text: 1 / 0)
    assert main(["parse", str(log)]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert err.rstrip().splitlines()[-1] == (
        "kpv: internal error (a bug in kpv): ZeroDivisionError: division by zero")



def test_series_without_revisions_runs_that_series_own(tmp_path, monkeypatch, capsys):
    """The default job lists v1, v2...: a --series of another's has none of them."""
    canary = Path(__file__).parent.parent / "stress" / "canaries" / "migration"
    monkeypatch.setenv("PATH", str(tmp_path))  # no QEMU: the run stops once revisions are known
    out = tmp_path / "out"
    assert main(["run", "--series", str(canary), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no revision" not in err
    assert _one_line(err.splitlines()[-1]) == (
        "kpv: error: qemu-system-x86_64 not found: install the qemu-system-x86 package")
