"""The CLI's bad-input paths that need no kernel: each a clear error, exit 2."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def no_work(monkeypatch):
    """A run that gets past its checks fails at once (exit 3) instead of building a kernel."""
    from pipeline.run import runner

    def prepare(*args: object) -> None:
        raise AssertionError("the run started: its options were not refused")

    monkeypatch.setattr(runner, "prepare", prepare)


def test_job_values_out_of_bounds_are_one_line_before_any_work(tmp_path, capsys, no_work):
    (tmp_path / "frag.config").write_text("CONFIG_SMP=y\nCONFIG_FOO=y y\n")
    job = tmp_path / "job.toml"
    job.write_text('[tree]\nsource = "debian:linux-source-6.1"\n[series]\nsource = "."\n'
                   '[kconfig]\nfragments = ["frag.config"]\n[guest]\nrepeats = 1000000\n')
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"kpv: error: {job}: invalid job file: {tmp_path}/frag.config:2: not a kconfig line: "
        "'CONFIG_FOO=y y'; guest.repeats: expected 1 to 100, got 1000000\n")
    assert main(["run", "--vcpus", "2,2", "--duration", "100000", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "kpv: error: invalid options: --vcpus: guest.vcpus: expected each count once, got "
        "[2, 2]; --duration: guest.duration: expected 1 to 14400 seconds (4 hours), got 100000\n")
    assert main(["run", "--vcpus", "65", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "kpv: error: invalid options: --vcpus: guest.vcpus: expected counts of 1 to 64 (the "
        "guest kernel's NR_CPUS), got [65]\n")
    assert not out.exists()  # refused before the first results.json


@pytest.mark.parametrize(("cell", "expected"), [
    ("baseline:0", "--cell baseline:0: guest.vcpus: expected counts of 1 to 64 (the guest "
                   "kernel's NR_CPUS), got [0]"),
    ("baseline:65", "--cell baseline:65: guest.vcpus: expected counts of 1 to 64"),
    ("baseline:\u00b2", "--cell baseline:\u00b2: expected REV:VCPUS, e.g. v1:2"),
    ("baseline:" + "9" * 5000, "expected REV:VCPUS, e.g. v1:2"),
    ("baseline:-1", "--cell baseline:-1: expected REV:VCPUS, e.g. v1:2"),
])
def test_a_cell_has_the_bounds_of_vcpus(tmp_path, capsys, no_work, cell, expected):
    assert main(["run", "--cell", cell, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kpv: error: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


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


def test_doctor_misses_kpv_files_an_install_lost(tmp_path, monkeypatch, capsys):
    """A copy of the package data without its stress sources and with the default job
    naming a fragment that is gone: doctor says which, exit 2."""
    from pipeline import packaged

    data = tmp_path / "data"
    shutil.copytree(packaged.DATA, data, symlinks=False)
    shutil.rmtree(data / "stress")
    (data / "kconfigs" / "mm.config").unlink()
    monkeypatch.setattr(packaged, "DEFAULT_JOB", data / "jobs" / "anon-vma.toml")
    monkeypatch.setattr(packaged, "STRESS_SRC", data / "stress")
    assert main(["doctor"]) == 2
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "kpv's own files" in ln]
    assert line == (f"MISSING  kpv's own files: {data}/jobs/anon-vma.toml: invalid job file: "
                    f"kconfig.fragments: {data}/kconfigs/mm.config: no such file; "
                    f"{data}/stress: no stress sources")


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
        "    chain, as printed: &mm->anon_vma_chain_lock, &anon_vma->rwsem",
        "lockdep-circular: possible deadlock in expand_downwards (boot, line 521, "
        "same as line 210)",
        "    chain, as printed: &mm->anon_vma_chain_lock, &anon_vma->rwsem",
        "2 report(s), 1 distinct",
    ]


def _kpv(*args: str, **how) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], stderr=subprocess.PIPE,
                            env={**env, **how.pop("env", {})}, **how)


@pytest.mark.parametrize("args", [
    ["--json", "faults-6.1-sanitizers-eighteen-boots.log"],  # more than a pipe holds
    ["v2-buildfix-6.1-two-boots-circular.log"],  # five lines: written when flushed
])
def test_parse_into_a_closed_pipe_ends_quietly(args):
    read, write = os.pipe()
    os.close(read)  # as `| head` that has already gone
    log = str(Path(__file__).parent / "data" / "console" / args[-1])
    kpv = _kpv("parse", *args[:-1], log, stdout=write)
    os.close(write)
    assert kpv.wait(timeout=60) == 141
    assert kpv.stderr.read() == b""


def test_sigint_stops_kpv_even_when_its_shell_ignored_it():
    # A server on 127.0.0.1 that accepts and never answers: kpv waits on it.
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/all"
        kpv = _kpv("series", "<kpv-test@example.invalid>", "--refresh", env={"KPV_LORE_URL": url},
                   stdout=subprocess.DEVNULL,
                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        server.settimeout(60)
        conn, _ = server.accept()  # kpv is waiting for the answer now
        with conn:
            kpv.send_signal(signal.SIGINT)
            assert kpv.wait(timeout=60) == 130
    assert b"kpv: interrupted" in kpv.stderr.read()
