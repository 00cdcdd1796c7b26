"""The CLI's bad-input paths that need no kernel: each a clear error, exit 2."""

import json
import subprocess
import sys
from pathlib import Path

from pipeline.cli import main


def test_missing_qemu_is_a_clear_runner_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-system-x86_64 anywhere
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), "--revisions", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "qemu-system-x86_64 not found: install the qemu-system-x86 package" in err
    # Even a run that could not start leaves its (empty) results behind.
    assert json.loads((out / "results.json").read_text())["suites"] == []
    assert (out / "junit.xml").is_file()


def test_job_file_typo(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text('[tree]\nsource = "debian:linux-source-6.1"\n[series]\nsourse = "x"\n')
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert str(job) in err and "series.sourse: unknown key" in err


def test_unknown_revision_and_bad_cell(tmp_path, capsys):
    assert main(["run", "--revisions", "v9", "--out", str(tmp_path)]) == 2
    assert "no revision 'v9'" in capsys.readouterr().err
    assert main(["run", "--cell", "v1", "--out", str(tmp_path)]) == 2
    assert "--cell v1: expected REV:VCPUS" in capsys.readouterr().err


def test_parse_missing_log(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "none.log")]) == 2
    assert "none.log: cannot read" in capsys.readouterr().err


def test_doctor_names_the_package_for_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "MISSING  git: install git" in out
    assert "MISSING  QEMU: qemu-system-x86_64 not found: install the qemu-system-x86 package" in out


def test_unknown_test_and_zero_vcpus_refused_before_anything_runs(tmp_path, capsys):
    assert main(["run", "--tests", "nosuch", "--out", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["run", "--vcpus", "0", "--out", str(tmp_path)]) == 2
    assert "guest.vcpus" in capsys.readouterr().err
    assert main(["run", "--duration", "0", "--out", str(tmp_path)]) == 2
    assert "guest.duration" in capsys.readouterr().err


def test_parse_says_why_frames_have_no_lines(tmp_path, capsys):
    log = Path(__file__).parent / "data" / "console" / "v2-buildfix-6.1-two-boots-circular.log"
    assert main(["parse", str(log), "--vmlinux", str(tmp_path / "vmlinux")]) == 1
    out = capsys.readouterr().out
    assert "lockdep-circular: possible deadlock in expand_downwards" in out
    assert "(symbols: " in out


def test_parse_text_shows_the_chain_and_which_reports_repeat(capsys):
    log = Path(__file__).parent / "data" / "console" / "v2-buildfix-6.1-two-boots-circular.log"
    assert main(["parse", str(log)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "lockdep-circular: possible deadlock in expand_downwards (boot, line 210)",
        "    chain: #1 &mm->anon_vma_chain_lock, #0 &anon_vma->rwsem",
        "lockdep-circular: possible deadlock in expand_downwards (boot, line 521, "
        "same as line 210)",
        "    chain: #1 &mm->anon_vma_chain_lock, #0 &anon_vma->rwsem",
        "2 report(s), 1 distinct",
    ]


def test_parse_into_a_closed_pipe_ends_quietly():
    log = Path(__file__).parent / "data" / "console" / "faults-6.1-sanitizers-eighteen-boots.log"
    kpv = subprocess.Popen([sys.executable, "-m", "pipeline", "parse", "--json", str(log)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kpv.stdout.read(1)
    kpv.stdout.close()  # as `| head -c1` does
    assert kpv.wait(timeout=60) == 141
    assert kpv.stderr.read() == b""
